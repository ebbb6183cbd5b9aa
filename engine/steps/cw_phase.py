"""Carlini & Wagner's attacks in a run: inputs, targets per case, live counters, results on disk.

The inputs are the first `samples` of the held-out inputs the JSMA phase attacks (the same seeded
order, so the models of a run, and JSMA and C&W, are compared on the same inputs). Targets follow
C&W's cases: average (one seeded random wrong target per input), best and worst (over all 9
targets of an input, which then are all attacked; the average case reuses one of them).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import asdict

import numpy as np
import torch

from engine.attacks.cw_l0 import CWL0Config, cw_l0
from engine.attacks.cw_l2 import CWL2Config, OnEscalation, cw_l2, escalation_label
from engine.attacks.cw_linf import CWLinfConfig, cw_linf
from engine.attacks.cw_result import CWResult
from engine.checkpoints import model_digest
from engine.presets import AttackConfig, CWL0Settings, CWL2Settings, CWLinfSettings
from engine.record.events import AttackProgress, AttackRow, AttackStarted, CWCase, CWFinished, Example
from engine.record.rundir import ATTACKS, atomic_write_bytes, atomic_write_json
from engine.steps.context import RunContext

NORM = {"cw_l2": "l2", "cw_l0": "l0", "cw_linf": "linf"}  # the distance each attack minimises


CWSettings = CWL2Settings | CWL0Settings | CWLinfSettings


def cw_settings(acfg: AttackConfig, method: str) -> CWSettings:
    settings: dict[str, CWSettings] = {"cw_l2": acfg.cw_l2, "cw_l0": acfg.cw_l0, "cw_linf": acfg.cw_linf}
    return settings[method]


def run_cw(method: str, model: torch.nn.Module, x: torch.Tensor, targets: torch.Tensor, settings: CWSettings,
           batch_size: int, on_finished, pause_point, on_escalation: OnEscalation | None = None) -> CWResult:
    fields = settings.model_dump(exclude={"samples"})
    if method == "cw_l2":
        return cw_l2(model, x, targets, CWL2Config(**fields, batch_size=batch_size), on_finished=on_finished,
                     pause_point=pause_point, on_escalation=on_escalation)
    if method == "cw_l0":
        return cw_l0(model, x, targets, CWL0Config(**fields, batch_size=batch_size), on_finished=on_finished,
                     pause_point=pause_point)
    return cw_linf(model, x, targets, CWLinfConfig(**fields, batch_size=batch_size), on_finished=on_finished,
                   pause_point=pause_point)


def cw_targets(labels: torch.Tensor, cases: list[str], seed: int, num_classes: int = 10,
               held_out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input index, target, is the input's average-case attack) per attack. With `held_out` (the inputs'
    indices in the held-out set) an input's random target depends on which input it is, not on its place
    in this list: a sweep's baseline and students, or a later attack on other inputs, pair up."""
    gen = torch.Generator().manual_seed(seed + 7919)
    if held_out is not None and len(held_out):
        offset = torch.randint(1, num_classes, (int(held_out.max()) + 1,), generator=gen)[held_out]
    else:
        offset = torch.randint(1, num_classes, (len(labels),), generator=gen)
    if any(c in cases for c in ("best", "worst")):
        idx = torch.arange(len(labels)).repeat_interleave(num_classes - 1)
        offs = torch.arange(1, num_classes).repeat(len(labels))
        return idx, (labels[idx] + offs) % num_classes, offs == offset[idx]
    idx = torch.arange(len(labels))
    return idx, (labels + offset) % num_classes, torch.ones(len(labels), dtype=torch.bool)


def _mean(v: torch.Tensor) -> float | None:
    return float(v.double().mean()) if len(v) else None


def case_summary(result: CWResult, idx: torch.Tensor, average: torch.Tensor, case: str, norm: str) -> CWCase:
    dist = {"l0": result.l0.double(), "l2": result.l2.double(), "linf": result.linf.double()}
    n_inputs = int(idx.max()) + 1 if len(idx) else 0
    if case == "average":
        rows = torch.nonzero(average).squeeze(1)
        ok = rows[result.success[rows]]
        chosen = ok
        succeeded = len(ok)
    else:
        chosen_list = []
        succeeded = 0
        own = dist[norm]
        for i in range(n_inputs):
            rows = torch.nonzero(idx == i).squeeze(1)
            wins = rows[result.success[rows]]
            if case == "best" and len(wins):
                chosen_list.append(int(wins[own[wins].argmin()]))
            elif case == "worst" and len(wins) == len(rows):  # every target reached, else the input failed
                chosen_list.append(int(rows[own[rows].argmax()]))
        chosen = torch.tensor(chosen_list, dtype=torch.long)
        succeeded = len(chosen_list)
    return CWCase(success_rate=succeeded / max(n_inputs, 1), inputs=n_inputs, succeeded=succeeded,
                  mean_l0=_mean(dist["l0"][chosen]), mean_l2=_mean(dist["l2"][chosen]),
                  mean_linf=_mean(dist["linf"][chosen]))


def cw_attack(exp: RunContext, model_name: str, method: str, chosen: torch.Tensor, digest: str,
              batch_size: int) -> AttackRow:
    """One (model, C&W method): attack, then attacks/<model>-<method>.json and .npz and the event; its
    summary row."""
    acfg = exp.preset.attack
    settings = cw_settings(acfg, method)
    inputs = chosen[: settings.samples or len(chosen)]
    labels = exp.data.y_test[inputs]
    idx, targets, average = cw_targets(labels, list(acfg.cw_cases), acfg.seed, held_out=inputs)
    x = exp.data.x_test[inputs][idx]
    key = f"{model_name}-{method}"
    trained = exp.trained(model_name)
    temperature = trained.temperature
    t0 = time.perf_counter()

    def progress(bar: str, output: str, n: int) -> Callable[[torch.Tensor], None]:
        exp.emit(AttackStarted(key=bar, model=model_name, output=output, n_attacks=n, samples=len(inputs),
                               output_temperature=None, method=method))
        counts = {"attempted": 0, "succeeded": 0}
        started = time.perf_counter()

        def finished(success: torch.Tensor) -> None:
            counts["attempted"] += len(success)
            counts["succeeded"] += int(success.sum())
            exp.emit(AttackProgress(key=bar, n_attacks=n, **counts,
                                    attacks_per_second=counts["attempted"] / max(time.perf_counter() - started, 1e-9)))
        return finished

    def escalation(round_: int, n: int, budget: CWL2Config) -> Callable[[torch.Tensor], None]:
        return progress(f"{key}-escalation{round_}", f"logits, {escalation_label(round_, budget)}", n)

    result = run_cw(method, trained.network, x, targets, settings, batch_size, progress(key, "logits", len(x)),
                    exp.pause_point, escalation)
    seconds = time.perf_counter() - t0
    cases = {c: case_summary(result, idx, average, c, NORM[method]) for c in acfg.cw_cases}
    consts = result.const[result.success]
    record = {
        "key": key, "model": model_name, "method": method, "model_temperature": temperature,
        "cases": {c: asdict(v) for c, v in cases.items()}, "n_attacks": len(x),
        "n_succeeded": int(result.success.sum()), "samples": len(inputs),
        "mean_iterations": float(result.iterations.double().mean()) if len(x) else 0.0,
        "median_const": float(consts.median()) if len(consts) else None,
        "seconds": seconds, "attacks_per_second": len(x) / max(seconds, 1e-9),
        "settings": settings.model_dump(exclude={"samples"}), "reduced": acfg.cw_reduced,
        "n_pixels": result.n_pixels, "inputs_digest": digest,
        "escalations": result.escalations,  # CW-L2: the misses attacked again with a larger budget, per round
        # CW-L2: attacks whose last binary step ran out of iterations with the loss still falling (None: not known)
        "unconverged": None if result.unfinished is None else int(result.unfinished.sum()),
        "checkpoint": model_digest(trained.network.state_dict()),
    }
    atomic_write_json(exp.rundir.path / ATTACKS / f"{key}.json", {**record, "inputs": inputs.tolist()})
    _save(exp.rundir.path / ATTACKS / f"{key}.npz", x, result, labels[idx], targets, idx)
    first = cases[acfg.cw_cases[0]]
    exp.emit(CWFinished(**{**record, "cases": cases}, examples=_examples(x, result, labels[idx], targets)))
    return AttackRow(success_rate=first.success_rate, n_attacks=len(x), mean_features_changed=None, rho_adv=None,
                     attacks_per_second=record["attacks_per_second"], method=method, case=acfg.cw_cases[0],
                     mean_l0=first.mean_l0, mean_l2=first.mean_l2, mean_linf=first.mean_linf,
                     checkpoint=record["checkpoint"])


def _examples(x, result: CWResult, labels, targets, k: int = 3) -> list[Example]:
    order = torch.argsort((~result.success).to(torch.int8), stable=True)[:k]
    pred = result.prediction if result.prediction is not None else torch.full_like(targets, -1)
    return [Example(label=int(labels[i]), target=int(targets[i]), success=bool(result.success[i]),
                    prediction=int(pred[i]), side=int(x.shape[-1]),
                    x=[round(v, 3) for v in x[i].mean(0).flatten().tolist()],
                    x_adv=[round(v, 3) for v in result.x_adv[i].mean(0).flatten().tolist()]) for i in order.tolist()]


def _save(path, x, result: CWResult, labels, targets, idx) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, x=x.numpy(), x_adv=result.x_adv.numpy(), label=labels.numpy(), target=targets.numpy(),
                        success=result.success.numpy(), l0=result.l0.numpy(), l2=result.l2.numpy(),
                        linf=result.linf.numpy(), const=result.const.numpy(), iterations=result.iterations.numpy(),
                        sample=idx.numpy(),
                        **({} if result.unfinished is None else {"unfinished": result.unfinished.numpy()}))
    atomic_write_bytes(path, buf.getvalue())
