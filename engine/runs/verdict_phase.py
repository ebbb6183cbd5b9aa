"""Is the robustness real? The evidence a run measures beyond its attacks, and a verdict per model.

After the attack phase, on `attack.check_samples` held-out inputs (the first of the attacked ones,
each with one seeded random wrong target):
- budget: JSMA-F with Upsilon = 100%, whose path gives success at every smaller budget too;
- blackbox: SimBA on the deployed log-scores (no gradient at all);
- transfer: CW-L2 at each kappa, and JSMA-F, made on the baseline and replayed on each other model
  (the examples are kept in attacks/baseline-transfer.npz, so a sweep replays them on its students).
The vanishing-gradient and other-output checks read the attack phase's own numbers. The evidence,
the checks and the verdict go into summary.json ("verdict") and a `verdict` event per model.
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.attacks.cw_l2 import CWL2Config, cw_l2
from engine.attacks.jsma import JSMAConfig, jsma
from engine.attacks.outputs import attacked_output
from engine.attacks.simba import SimBAConfig, simba
from engine.device import attack_batch_size, pair_chunk_elems
from engine.masking.budget import jsma_curve, l2_curve
from engine.masking.checks import Evidence, judge
from engine.masking.transfer import replay
from engine.numerics import exact_float32
from engine.runs.events import AttackProgress, AttackStarted, CheckRow, VerdictMade
from engine.runs.rundir import ATTACKS, atomic_write_bytes, atomic_write_json, read_json

TRANSFER_FILE = "baseline-transfer.npz"
OUTPUT_NAMES = {"softmax_T": "JSMA on softmax(z/T)", "logits": "JSMA on the logits", "cw_l2": "CW-L2 on the logits",
                "cw_l0": "CW-L0 on the logits", "cw_linf": "CW-Linf on the logits"}


def check_inputs(exp: Any, chosen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs, their labels, one seeded random wrong target each): C&W's average case."""
    from engine.runs.cw_phase import cw_targets

    acfg = exp.preset.attack
    inputs = chosen[: acfg.check_samples or len(chosen)]
    labels = exp.data.y_test[inputs]
    _idx, targets, _avg = cw_targets(labels, ["average"], acfg.seed)
    return inputs, labels, targets


def _progress(exp: Any, key: str, model: str, n: int, what: str, temperature: float):
    exp.emit(AttackStarted(key=key, model=model, output=what, n_attacks=n, samples=n, temperature=temperature,
                           method=key.split("-", 1)[1]))
    counts = {"attempted": 0, "succeeded": 0}
    t0 = time.perf_counter()

    def finished(success: torch.Tensor, *_rest: Any) -> None:
        counts["attempted"] += len(success)
        counts["succeeded"] += int(success.sum())
        exp.emit(AttackProgress(key=key, n_attacks=n, **counts,
                                attacks_per_second=counts["attempted"] / max(time.perf_counter() - t0, 1e-9)))

    return finished


def make_transfer_examples(exp: Any, x: torch.Tensor, targets: torch.Tensor) -> Path:
    """CW-L2 at each kappa on the baseline (attacks/baseline-transfer.npz), made once per run."""
    acfg = exp.preset.attack
    path = exp.rundir.path / ATTACKS / TRANSFER_FILE
    if path.exists():
        return path
    arrays: dict[str, np.ndarray] = {"x": x.numpy(), "target": targets.numpy(),
                                     "kappas": np.array(acfg.transfer_kappas, dtype=np.float64)}
    base = exp.models["baseline"]
    settings = acfg.cw_l2.model_dump(exclude={"samples", "confidence"})
    for k in acfg.transfer_kappas:
        key = f"baseline-transfer_k{k:g}"
        done = _progress(exp, key, "baseline", len(x), f"CW-L2 kappa={k:g}", 1.0)
        res = cw_l2(base, x, targets, CWL2Config(**settings, confidence=k,
                                                 batch_size=attack_batch_size(acfg.batch_size, exp.device, len(x))),
                    on_finished=done, pause_point=exp.pause_point)
        arrays[f"x_adv_k{k:g}"], arrays[f"made_k{k:g}"] = res.x_adv.numpy(), res.success.numpy()
        arrays[f"l2_k{k:g}"] = res.l2.numpy()
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return path


def transfer_evidence(model: nn.Module, transfer_npz: Path, jsma_npz: Path | None) -> dict[str, float]:
    """Success on `model` of the baseline's examples (kept only where they worked on the baseline)."""
    out: dict[str, float] = {}
    data = np.load(transfer_npz)
    targets = torch.from_numpy(data["target"])
    for k in data["kappas"].tolist():
        r = replay(model, torch.from_numpy(data[f"x_adv_k{k:g}"]), targets, torch.from_numpy(data[f"made_k{k:g}"]))
        out[f"CW-L2 kappa={k:g} from the baseline"] = float(r["success_rate"])
    if jsma_npz is not None and jsma_npz.exists():
        j = np.load(jsma_npz)
        r = replay(model, torch.from_numpy(j["x_adv"]), torch.from_numpy(j["target"]), torch.from_numpy(j["success"]))
        out["JSMA-F from the baseline"] = float(r["success_rate"])
    return out


def measure_model(exp: Any, name: str, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
    """Budget curve and SimBA for one model; results in attacks/<model>-budget.json / -simba.json."""
    acfg = exp.preset.attack
    model = exp.models[name]
    x = exp.data.x_test[inputs]
    t_train = 1.0 if name == "baseline" else float(exp.temperature)
    found: dict[str, Any] = {}
    if (exp.rundir.path / ATTACKS / f"{name}-budget.json").exists() and \
            (exp.rundir.path / ATTACKS / f"{name}-simba.json").exists():
        return found  # measured before (a resumed or re-attacked run): the files are the record
    if "budget" in acfg.checks:
        done = _progress(exp, f"{name}-budget", name, len(x), "softmax, Upsilon 100%", 1.0)
        cfg = JSMAConfig(theta=acfg.theta, upsilon=1.0, no_pair=acfg.no_pair,
                         batch_size=attack_batch_size(acfg.batch_size, exp.device, len(x)),
                         pair_chunk=pair_chunk_elems(exp.device))
        res = jsma(attacked_output(model, "softmax", 1.0), x, targets, cfg, on_finished=done,
                   pause_point=exp.pause_point)
        found["jsma_budget"] = jsma_curve(res.success, res.iterations, res.n_features)
        atomic_write_json(exp.rundir.path / ATTACKS / f"{name}-budget.json",
                          {"model": name, "jsma_budget": found["jsma_budget"], "n_attacks": len(x),
                           "temperature": t_train, "inputs": inputs.tolist()})
    if "blackbox" in acfg.checks:
        done = _progress(exp, f"{name}-simba", name, len(x), "deployed log-scores", 1.0)
        t0 = time.perf_counter()
        res = simba(model, x, targets, SimBAConfig(epsilon=acfg.simba_epsilon, max_queries=acfg.simba_queries,
                                                   batch_size=attack_batch_size(acfg.batch_size, exp.device, len(x)),
                                                   seed=acfg.seed), on_finished=done, pause_point=exp.pause_point)
        rate = float(res.success.float().mean())
        q = float(res.queries[res.success].double().mean()) if res.success.any() else None
        found["blackbox"], found["blackbox_queries"] = {"SimBA": rate}, {"SimBA": q}
        atomic_write_json(exp.rundir.path / ATTACKS / f"{name}-simba.json",
                          {"model": name, "success_rate": rate, "mean_queries_per_success": q, "n_attacks": len(x),
                           "max_queries": acfg.simba_queries, "epsilon": acfg.simba_epsilon,
                           "seconds": time.perf_counter() - t0, "inputs": inputs.tolist()})
    return found


def assemble_verdict(run_dir: Path, summary: dict[str, Any], name: str, model: nn.Module | None = None,
                     transfer_npz: Path | None = None, jsma_npz: Path | None = None) -> VerdictMade:
    """The verdict for one model of a run, from its files: the attack table and gradient amplitude in
    summary.json, attacks/<model>-budget.json, -simba.json and -cw_l2.npz; with `model` and the
    baseline's transfer examples, their replay on it. The same for a live run, `verdict` and sweeps."""
    attacks = summary.get("attacks", {})
    folder = run_dir / ATTACKS
    fix = f"delete it and run `defdistill-engine attack {run_dir}` to redo it"
    budget = read_json(folder / f"{name}-budget.json", fix) or {}
    sim = read_json(folder / f"{name}-simba.json", fix)
    wb = attacks.get(f"{name}-softmax", {}).get("success_rate")
    if wb is None and budget.get("jsma_budget"):  # JSMA-F not in the attack table: its budget run at 14.5%
        wb = budget["jsma_budget"].get("0.145", 0.0)
    transfer = {}
    if model is not None and transfer_npz is not None and transfer_npz.exists() and name != "baseline":
        transfer = transfer_evidence(model, transfer_npz, jsma_npz)
    e = Evidence(
        model=name, whitebox="JSMA-F", whitebox_success=float(wb or 0.0),
        zero_gradient_share=summary.get("gradient_amplitude", {}).get(name, {}).get("zero_share"),
        other_outputs={OUTPUT_NAMES[k.split("-", 1)[1]]: v["success_rate"] for k, v in attacks.items()
                       if k.startswith(name + "-") and k.split("-", 1)[1] in OUTPUT_NAMES},
        transfer=transfer,
        blackbox={"SimBA": sim["success_rate"]} if sim else {},
        blackbox_queries={"SimBA": sim["mean_queries_per_success"]} if sim else {},
        jsma_budget=budget.get("jsma_budget", {}), cw_budget=cw_l2_budget(folder / f"{name}-cw_l2.npz"))
    v = judge(e)
    return VerdictMade(model=v.model, verdict=v.verdict, text=v.text,
                       checks=[CheckRow(**asdict(c)) for c in v.checks], evidence=asdict(e))


def run_verdict_phase(exp: Any, summary: dict[str, Any], chosen: torch.Tensor, models: list[str]) -> None:
    acfg = exp.preset.attack
    if not acfg.checks:
        return
    with exact_float32():
        inputs, _labels, targets = check_inputs(exp, chosen)
        transfer_npz = None
        if "transfer" in acfg.checks and "baseline" in exp.models:
            transfer_npz = make_transfer_examples(exp, exp.data.x_test[inputs], targets)
        for name in models:
            measure_model(exp, name, inputs, targets)
            event = assemble_verdict(exp.rundir.path, summary, name, exp.models[name], transfer_npz,
                                     exp.rundir.path / ATTACKS / "baseline-softmax.npz")
            summary.setdefault("verdict", {})[name] = asdict(event)
            exp.emit(event)


def cw_l2_budget(npz: Path) -> dict[str, float]:
    if not npz.exists():
        return {}
    d = np.load(npz)
    return l2_curve(torch.from_numpy(d["success"]), torch.from_numpy(d["l2"]))
