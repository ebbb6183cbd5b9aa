"""The attack phase: JSMA on each (model, attacked output), live counters, results on disk."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from engine.attacks.jsma import ENDED, JSMAConfig, jsma
from engine.attacks.jsma_metrics import (
    ended_counts,
    mean_features_changed,
    rho_adv,
    success_matrix,
    success_rate,
)
from engine.attacks.outputs import attacked_output
from engine.checkpoints import model_digest
from engine.device import attack_batch_size, pair_chunk_elems
from engine.errors import AttackConfigError
from engine.metrics import gradient_amplitude
from engine.numerics import exact_float32
from engine.record.events import (
    AttackFinished,
    AttackProgress,
    AttackRow,
    AttackRows,
    AttackStarted,
    Example,
    RunSummary,
)
from engine.record.rundir import ATTACKS, atomic_write_bytes, atomic_write_json
from engine.steps.context import RunContext
from engine.steps.cw_phase import cw_attack
from engine.steps.request import AttackRequest
from engine.steps.verdict_phase import run_verdict_phase
from engine.training import predict_logits


def choose_samples(exp: RunContext, model_names: list[str], samples: int, seed: int) -> torch.Tensor:
    """Held-out inputs every attacked model classifies correctly, in a seeded order, so baseline
    and student are attacked on the very same inputs."""
    y = exp.data.y_test
    ok = torch.ones(len(y), dtype=torch.bool)
    for name in model_names:
        ok &= predict_logits(exp.models[name], exp.data.x_test, exp.device).argmax(1) == y
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    return order[ok[order]][:samples]


def attack_pairs(labels: torch.Tensor, num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sample against each of its other classes: (sample index, target) per attack."""
    idx = torch.arange(len(labels)).repeat_interleave(num_classes - 1)
    offsets = torch.arange(1, num_classes).repeat(len(labels))
    return idx, (labels[idx] + offsets) % num_classes


def inputs_digest(indices: torch.Tensor) -> str:
    """Which held-out inputs were attacked, in a few characters: equal digests = paired comparisons."""
    return hashlib.sha1(",".join(map(str, indices.tolist())).encode()).hexdigest()[:12]


def run_attack_phase(exp: RunContext, summary: RunSummary, request: AttackRequest) -> AttackRows:
    """Attack each requested (model, output, method) (None: the preset's; () methods: none), then with
    `checks` the preset's masking checks and a verdict per model; the summary's rows they measured.
    `summary` is read only (which gradient measurements are still fresh). TF32 is off throughout."""
    r = request
    with exact_float32():
        chosen, models_run, rows = _run_attack_phase(exp, summary, r.models, r.outputs, r.samples, r.methods)
    if r.checks:
        rows = rows.merged(run_verdict_phase(exp, chosen, models_run))
    return rows


def _run_attack_phase(exp: RunContext, summary: RunSummary, models: Sequence[str] | None,
                      outputs: Sequence[str] | None, samples: int | None,
                      methods: Sequence[str] | None) -> tuple[torch.Tensor, list[str], AttackRows]:
    acfg = exp.preset.attack
    models = list(models or acfg.models)
    outputs = list(outputs or acfg.outputs)
    methods = list(acfg.methods if methods is None else methods)
    missing = [m for m in models if m not in exp.models]
    if missing:
        raise AttackConfigError(f"cannot attack {', '.join(missing)}: the run did not train it; attack one of "
                                f"{', '.join(exp.models)}")
    n_samples = samples or acfg.samples
    chosen = choose_samples(exp, models, n_samples, acfg.seed)
    if len(chosen) == 0:
        raise AttackConfigError(f"no held-out input is classified correctly by {' and '.join(models)}, so there is "
                                "nothing to attack; train longer (training.epochs) or check the run's accuracy")
    digest = inputs_digest(chosen)
    sample_idx, targets = attack_pairs(exp.data.y_test[chosen])
    x = exp.data.x_test[chosen][sample_idx]
    labels = exp.data.y_test[chosen][sample_idx]
    cfg = JSMAConfig(theta=acfg.theta, upsilon=acfg.upsilon, no_pair=acfg.no_pair,
                     batch_size=attack_batch_size(acfg.batch_size, exp.device, len(x)),
                     pair_chunk=pair_chunk_elems(exp.device))
    exp.phase = "attack"
    table: dict[str, AttackRow] = {}
    gradients: dict[str, dict[str, Any]] = {}
    for model in models:
        trained = exp.trained(model)
        net = trained.network
        checkpoint = model_digest(net.state_dict())
        old = gradients.get(model) or summary.gradient_amplitude.get(model)  # a model asked for twice: once
        # measured on another checkpoint, or by an older version: measured again
        if old is None or old.get("checkpoint", checkpoint) != checkpoint or "randomized_inputs" not in old:
            amp = {**gradient_amplitude(net, exp.data.x_test[chosen], 1.0, exp.device), "checkpoint": checkpoint}
            atomic_write_json(exp.rundir.path / ATTACKS / f"{model}-gradients.json", amp)
            gradients[model] = {k: v for k, v in amp.items() if k != "values"}
        for out_name in outputs if "jsma" in methods else ():
            key = f"{model}-{out_name}"
            output = attacked_output(net, out_name, trained.temperature)
            counts = {"attempted": 0, "succeeded": 0}
            exp.emit(AttackStarted(key=key, model=model, output=out_name, n_attacks=len(x), samples=len(chosen),
                                   output_temperature=output.temperature))
            t0 = time.perf_counter()

            def finished(success: torch.Tensor, ended: torch.Tensor, key=key, counts=counts, t0=t0) -> None:
                counts["attempted"] += len(success)
                counts["succeeded"] += int(success.sum())
                elapsed = time.perf_counter() - t0
                exp.emit(AttackProgress(key=key, n_attacks=len(x), **counts,
                                        attacks_per_second=counts["attempted"] / max(elapsed, 1e-9)))

            result = jsma(output, x, targets, cfg, on_finished=finished, pause_point=exp.pause_point)
            seconds = time.perf_counter() - t0
            record = {
                "model": model, "output": out_name, "output_temperature": output.temperature,
                "success_rate": success_rate(result), "n_attacks": len(x), "n_succeeded": int(result.success.sum()),
                "samples": len(chosen), "mean_features_changed": mean_features_changed(result),
                "mean_pixels_changed": (float(result.pixels_changed[result.success].float().mean())
                                        / (result.n_features // x.shape[1]) if result.success.any() else None),
                "ended": ended_counts(result), "no_pair_rule": cfg.no_pair,
                "unconstrained_steps": result.unconstrained_steps, "theta": cfg.theta, "upsilon": cfg.upsilon,
                "max_iterations": result.max_iterations, "n_features": result.n_features,
                "seconds": seconds, "attacks_per_second": len(x) / max(seconds, 1e-9),
                "matrix": success_matrix(result, labels, targets),
                **rho_adv(result, sample_idx), "inputs_digest": digest, "checkpoint": checkpoint,
            }
            atomic_write_json(exp.rundir.path / ATTACKS / f"{key}.json", {**record, "inputs": chosen.tolist()})
            _save_examples(exp.rundir.path / ATTACKS / f"{key}.npz", x, result, labels, targets, sample_idx)
            table[key] = AttackRow(
                **{k: record[k] for k in ("success_rate", "n_attacks", "mean_features_changed", "rho_adv",
                                          "attacks_per_second")},
                rho_adv_is_lower_bound=record["is_lower_bound"], checkpoint=checkpoint)
            exp.emit(AttackFinished(key=key, **record, examples=_examples(x, result, labels, targets)))
        for method in methods:  # Carlini & Wagner's own attacks, on the logits, after JSMA's outputs
            if method != "jsma":
                table[f"{model}-{method}"] = cw_attack(
                    exp, model, method, chosen, digest, attack_batch_size(acfg.batch_size, exp.device, len(chosen) * 9))
    return chosen, models, AttackRows(attacks=table, gradient_amplitude=gradients)


def _examples(x, result, labels, targets, k: int = 3) -> list[Example]:
    """A few adversarial examples as plain numbers (successes first), so the event log alone can
    draw them next to their originals."""
    order = torch.argsort((~result.success).to(torch.int8), stable=True)[:k]
    return [Example(label=int(labels[i]), target=int(targets[i]), success=bool(result.success[i]),
                    prediction=int(result.prediction[i]), side=int(x.shape[-1]),
                    x=[round(v, 3) for v in x[i].mean(0).flatten().tolist()],
                    x_adv=[round(v, 3) for v in result.x_adv[i].mean(0).flatten().tolist()]) for i in order.tolist()]


def _save_examples(path, x, result, labels, targets, sample_idx) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, x=x.numpy(), x_adv=result.x_adv.numpy(), label=labels.numpy(),
                        target=targets.numpy(), success=result.success.numpy(),
                        ended=np.array([ENDED[i] for i in result.ended.tolist()]),
                        features_changed=result.features_changed.numpy(), sample=sample_idx.numpy())
    atomic_write_bytes(path, buf.getvalue())
