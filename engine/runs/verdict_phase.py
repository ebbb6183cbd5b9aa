"""Is the robustness real? The evidence a run measures beyond its attacks, and a verdict per model.

After the attack phase, on `attack.check_samples` held-out inputs (the first of the attacked ones,
each with one seeded random wrong target, the same targets as C&W's average case):
- transfer: CW-L2 at each kappa made on the baseline (attacks/baseline-transfer.npz, so a sweep replays
  them on its students), with the baseline's own CW-L2 and JSMA-F examples of the attack phase;
- blackbox: SimBA on the deployed log-scores (no gradient at all), each pixel within +-epsilon;
- budget (optional evidence): JSMA-F with Upsilon = 100%, whose path gives success at every budget.
Every comparison pairs two attacks on the same (held-out input, target): CW-L2's minimal L2 against a
transfer or SimBA example's L2, JSMA-F against another attack at the same Upsilon. Vanishing gradients
and randomized outputs come from the attack phase's gradient measurement. The evidence, the checks and
the verdict go into summary.json ("verdict") and a `verdict` event per model.
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
from engine.checkpoints import model_digest
from engine.device import attack_batch_size, pair_chunk_elems
from engine.errors import RunDirError
from engine.masking.budget import jsma_curve, l2_curve
from engine.masking.checks import Evidence, judge
from engine.masking.transfer import hits, per_input_l2
from engine.numerics import exact_float32
from engine.runs.context import RunContext
from engine.runs.events import AttackProgress, AttackStarted, CheckRow, VerdictMade
from engine.runs.rundir import ATTACKS, RunDir, atomic_write_bytes, atomic_write_json, read_json

TRANSFER_FILE = "baseline-transfer.npz"
OUTPUT_NAMES = {"softmax_T": "JSMA on softmax(z/T)", "logits": "JSMA on the logits", "cw_l2": "CW-L2 on the logits",
                "cw_l0": "CW-L0 on the logits", "cw_linf": "CW-Linf on the logits"}


def check_inputs(exp: RunContext, chosen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs, their labels, one seeded random wrong target each): C&W's average case."""
    from engine.runs.cw_phase import cw_targets

    acfg = exp.preset.attack
    inputs = chosen[: acfg.check_samples or len(chosen)]
    labels = exp.data.y_test[inputs]
    _idx, targets, _avg = cw_targets(labels, ["average"], acfg.seed, held_out=inputs)
    return inputs, labels, targets


def _progress(exp: RunContext, key: str, model: str, n: int, what: str, temperature: float):
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


def make_transfer_examples(exp: RunContext, inputs: torch.Tensor, x: torch.Tensor, targets: torch.Tensor) -> Path:
    """CW-L2 at each kappa on the baseline (attacks/baseline-transfer.npz), made once per run."""
    acfg = exp.preset.attack
    path = exp.rundir.path / ATTACKS / TRANSFER_FILE
    if path.exists():
        with np.load(path) as old:
            if "inputs" in old.files and np.array_equal(old["inputs"], inputs.numpy()):
                return path  # made before for these inputs; an older file without them is made again
    arrays: dict[str, np.ndarray] = {"x": x.numpy(), "target": targets.numpy(), "inputs": inputs.numpy(),
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


Key = tuple[int, int]  # (held-out input index, target)


class Freshness:
    """Which result files were measured on the checkpoint a model has now (engine.checkpoints.model_digest):
    a file made on another one is left out of the verdict and named, with how to measure it again."""

    def __init__(self, run_dir: Path, name: str) -> None:
        saved = RunDir(run_dir).load_tensors(name) if (run_dir / "checkpoints").is_dir() else None
        self.current = model_digest(saved[0], checkpoint=True) if saved is not None else None
        self.stale: list[str] = []

    def fresh(self, record: dict[str, Any] | None, label: str) -> bool:
        made_on = (record or {}).get("checkpoint")
        if not made_on or self.current is None or made_on == self.current:
            return True  # older results carry no digest: nothing to compare them with
        self.stale.append(label)
        return False


def _attack_file(folder: Path, key: str, fix: str,
                 freshness: Freshness | None = None) -> tuple[dict[Key, int], dict[str, np.ndarray]] | None:
    """An attack's rows by (held-out input, target), and its arrays; None when it was not run (or was
    run on another checkpoint of the model: `freshness` records that)."""
    npz, record = folder / f"{key}.npz", read_json(folder / f"{key}.json", fix)
    if record is None or not npz.exists() or "inputs" not in record:
        return None
    if freshness is not None and not freshness.fresh(record, f"{key}.json"):
        return None
    try:
        with np.load(npz) as d:
            arrays = {k: d[k] for k in d.files}
        inputs = record["inputs"]
        keys = {(int(inputs[int(s)]), int(t)): i for i, (s, t) in enumerate(zip(arrays["sample"], arrays["target"],
                                                                                 strict=True))}
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise RunDirError(f"{npz} cannot be read ({type(exc).__name__}: {str(exc)[:80]}); {fix}") from None
    return keys, arrays


def _replayed_l2(model: nn.Module, keys: list[Key], x: np.ndarray, x_adv: np.ndarray, targets: np.ndarray,
                 made: np.ndarray) -> dict[Key, float | None]:
    """Per (input, target): the L2 of an example made on the baseline that reaches its target on `model`."""
    x_adv_t = torch.from_numpy(x_adv)
    hit = hits(model, x_adv_t, torch.from_numpy(targets), torch.from_numpy(made))
    return dict(zip(keys, per_input_l2(torch.from_numpy(x), x_adv_t, hit), strict=True))


def transfer_l2(model: nn.Module, transfer_npz: Path) -> dict[str, dict[Key, float | None]]:
    """The baseline's CW-L2 examples at each kappa replayed on `model`: per (input, target) the
    example's L2 where it was made on the baseline and reaches the target on `model`, else None."""
    out: dict[str, dict[Key, float | None]] = {}
    with np.load(transfer_npz) as data:
        if "inputs" not in data.files:
            return out  # made by an older version, without the inputs it was made for: not comparable
        keys = list(zip(data["inputs"].tolist(), data["target"].tolist(), strict=True))
        for k in data["kappas"].tolist():
            out[f"CW-L2 kappa={k:g} from the baseline"] = _replayed_l2(
                model, keys, data["x"], data[f"x_adv_k{k:g}"], data["target"], data[f"made_k{k:g}"])
    return out


def measure_model(exp: RunContext, name: str, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
    """Budget curve and SimBA for one model; results in attacks/<model>-budget.json / -simba.json."""
    acfg = exp.preset.attack
    trained = exp.trained(name)
    model, t_train = trained.network, trained.temperature
    x = exp.data.x_test[inputs]
    found: dict[str, Any] = {}
    folder = exp.rundir.path / ATTACKS
    checkpoint = model_digest(model.state_dict())

    def measured(file: str) -> bool:  # on this checkpoint: a file made on another one is measured again
        rec = read_json(folder / file, f"delete it and run `defdistill-engine attack {exp.rundir.path} --checks`")
        # and in this version's form: SimBA's per-input L2 and targets are what the checks pair
        return rec is not None and rec.get("checkpoint", checkpoint) == checkpoint and \
            (not file.endswith("-simba.json") or "l2" in rec)

    if "budget" in acfg.checks and not measured(f"{name}-budget.json"):
        done = _progress(exp, f"{name}-budget", name, len(x), "softmax, Upsilon 100%", 1.0)
        cfg = JSMAConfig(theta=acfg.theta, upsilon=1.0, no_pair=acfg.no_pair,
                         batch_size=attack_batch_size(acfg.batch_size, exp.device, len(x)),
                         pair_chunk=pair_chunk_elems(exp.device))
        res = jsma(attacked_output(model, "softmax", 1.0), x, targets, cfg, on_finished=done,
                   pause_point=exp.pause_point)
        found["jsma_budget"] = jsma_curve(res.success, res.iterations, res.n_features)
        atomic_write_json(exp.rundir.path / ATTACKS / f"{name}-budget.json",
                          {"model": name, "jsma_budget": found["jsma_budget"], "n_attacks": len(x),
                           "temperature": t_train, "inputs": inputs.tolist(), "checkpoint": checkpoint})
    if "blackbox" in acfg.checks and not measured(f"{name}-simba.json"):
        done = _progress(exp, f"{name}-simba", name, len(x), "deployed log-scores", 1.0)
        t0 = time.perf_counter()
        res = simba(model, x, targets, SimBAConfig(epsilon=acfg.simba_epsilon, max_queries=acfg.simba_queries,
                                                   batch_size=attack_batch_size(acfg.batch_size, exp.device, len(x)),
                                                   seed=acfg.seed), on_finished=done, pause_point=exp.pause_point)
        rate = float(res.success.float().mean())
        q = float(res.queries[res.success].double().mean()) if res.success.any() else None
        found["blackbox"], found["blackbox_queries"] = {"SimBA": rate}, {"SimBA": q}
        atomic_write_json(folder / f"{name}-simba.json",
                          {"model": name, "success_rate": rate, "mean_queries_per_success": q, "n_attacks": len(x),
                           "max_queries": acfg.simba_queries, "epsilon": acfg.simba_epsilon,
                           "seconds": time.perf_counter() - t0, "inputs": inputs.tolist(),
                           "targets": targets.tolist(), "checkpoint": checkpoint,
                           "l2": per_input_l2(x, res.x_adv, res.success)})
    return found


def _jsma_pairs(folder: Path, name: str, fix: str, model: nn.Module | None, jsma_npz: Path | None,
                freshness: Freshness) -> tuple[dict[str, list[tuple[bool, bool]]], float | None]:
    """JSMA on the other outputs, and the baseline's JSMA-F examples replayed here, beside JSMA-F on
    the same (input, target) at the same Upsilon; and JSMA-F's success."""
    others = {out: _attack_file(folder, f"{name}-{out}", fix, freshness) for out in ("logits", "softmax_T")}
    f = _attack_file(folder, f"{name}-softmax", fix, freshness)  # every file looked at: all stale ones named
    if f is None:
        return {}, None
    f_keys, f_arr = f
    f_won = f_arr["success"].astype(bool)
    pairs: dict[str, list[tuple[bool, bool]]] = {}
    for out, o in others.items():
        if o is not None:
            pairs[OUTPUT_NAMES[out]] = [(bool(o[1]["success"][i]), bool(f_won[f_keys[k]]))
                                        for k, i in o[0].items() if k in f_keys]
    if model is not None and jsma_npz is not None and name != "baseline":
        b = _attack_file(jsma_npz.parent, jsma_npz.stem, fix)
        if b is not None:
            b_keys, b_arr = b
            hit = hits(model, torch.from_numpy(b_arr["x_adv"]), torch.from_numpy(b_arr["target"]),
                       torch.from_numpy(b_arr["success"])).numpy()
            pairs["JSMA-F transfer from the baseline"] = [(bool(hit[i]), bool(f_won[f_keys[k]]))
                                                        for k, i in b_keys.items() if k in f_keys]
    return pairs, float(f_won.mean()) if len(f_won) else 0.0


def assemble_verdict(run_dir: Path, summary: dict[str, Any], name: str, model: nn.Module | None = None,
                     transfer_npz: Path | None = None, jsma_npz: Path | None = None) -> VerdictMade:
    """The verdict for one model of a run, from its files: the attacks of the attack phase
    (attacks/<model>-<output>.npz and -cw_l2.npz), the gradient measurement in summary.json,
    attacks/<model>-simba.json and -budget.json; with `model` and the baseline's examples (its
    transfer file, its JSMA-F and CW-L2 attacks), their replay on it. The same for a live run,
    `verdict` and sweeps."""
    folder = run_dir / ATTACKS
    fix = f"delete it and run `defdistill-engine attack {run_dir} --checks` to redo it"
    freshness = Freshness(run_dir, name)
    budget = read_json(folder / f"{name}-budget.json", fix) or {}
    budget = budget if freshness.fresh(budget, f"{name}-budget.json") else {}
    sim = read_json(folder / f"{name}-simba.json", fix)
    sim = sim if freshness.fresh(sim, f"{name}-simba.json") else None
    pairs, wb = _jsma_pairs(folder, name, fix, model, jsma_npz, freshness)
    upsilon = float((read_json(folder / f"{name}-softmax.json", fix) or {}).get("upsilon", 0.145))
    if wb is None and budget.get("jsma_budget"):  # JSMA-F not in the attack table: its budget run at Upsilon
        wb = budget["jsma_budget"].get(f"{upsilon:g}")
    cw = _attack_file(folder, f"{name}-cw_l2", fix, freshness)
    cw_rec = read_json(folder / f"{name}-cw_l2.json", fix) or {} if cw is not None else {}
    whitebox: dict[Key, float | None] = {}
    if cw is not None:
        ok, l2 = cw[1]["success"].astype(bool), cw[1]["l2"]
        whitebox = {k: float(l2[i]) if ok[i] else None for k, i in cw[0].items()}
    l2_pairs: dict[str, list[tuple[float | None, float | None]]] = {}
    if sim and "l2" in sim and whitebox:
        keys = zip(sim["inputs"], sim["targets"], strict=True)
        l2_pairs["SimBA"] = [(v, whitebox[(int(i), int(t))]) for (i, t), v in zip(keys, sim["l2"], strict=True)
                             if (int(i), int(t)) in whitebox]
    transfer_share: dict[str, float] = {}
    if model is not None and name != "baseline" and whitebox:
        replayed = transfer_l2(model, transfer_npz) if transfer_npz is not None and transfer_npz.exists() else {}
        base_cw = _attack_file(jsma_npz.parent, "baseline-cw_l2", fix) if jsma_npz is not None else None
        if base_cw is not None:  # the baseline's own CW-L2 (kappa 0) of the attack phase, replayed here
            keys, arr = base_cw
            rows = list(keys.values())
            replayed.setdefault("CW-L2 kappa=0 from the baseline", _replayed_l2(
                model, list(keys), *(arr[k][rows] for k in ("x", "x_adv", "target", "success"))))
        for label, by_key in replayed.items():
            l2_pairs[label] = [(v, whitebox[k]) for k, v in by_key.items() if k in whitebox]
            transfer_share[label] = sum(v is not None for v in by_key.values()) / max(len(by_key), 1)
    grads = summary.get("gradient_amplitude", {}).get(name, {})
    grads = grads if freshness.fresh(grads, f"the gradient measurement of {name} (summary.json)") else {}
    n_grad = int(grads.get("n_inputs", 0))
    zeros = grads.get("zero_inputs", round(grads.get("zero_share", 0.0) * n_grad))
    e = Evidence(
        model=name, whitebox="JSMA-F", whitebox_success=float(wb or 0.0),
        upsilon=upsilon,
        zero_gradients=(int(zeros), n_grad) if n_grad else None,
        randomized=(int(grads["randomized_inputs"]), n_grad) if n_grad and "randomized_inputs" in grads else None,
        zero_logit_gradients=(int(grads["zero_logit_inputs"]), n_grad) if n_grad and "zero_logit_inputs" in grads
        else None,
        jsma_pairs=pairs, l2_pairs=l2_pairs, gradient_free=["SimBA"],
        cw_l2=list(whitebox.values()), cw_settings=cw_rec.get("settings", {}),
        cw_unconverged=(int(cw_rec["unconverged"]), int(cw_rec["n_attacks"]))
        if cw_rec.get("unconverged") is not None else None,
        zero_gradient_share=grads.get("zero_share"),
        other_outputs={k: sum(o for o, _f in v) / len(v) for k, v in pairs.items()
                       if v and k in OUTPUT_NAMES.values()},
        transfer=transfer_share,
        blackbox={"SimBA": sim["success_rate"]} if sim else {},
        blackbox_queries={"SimBA": sim["mean_queries_per_success"]} if sim else {},
        jsma_budget=budget.get("jsma_budget", {}),
        cw_budget=cw_l2_budget(folder / f"{name}-cw_l2.npz") if cw is not None else {})
    v = judge(e)
    if freshness.stale:  # said with the verdict: what was left out, and how to measure it on this checkpoint
        v.text += (f". Left out, measured on another checkpoint of {name} (its weights changed since): "
                   f"{', '.join(sorted(set(freshness.stale)))}; measure them again with `defdistill-engine attack "
                   f"{run_dir} --model {name} --checks`")
    return VerdictMade(model=v.model, verdict=v.verdict, text=v.text,
                       checks=[CheckRow(**asdict(c)) for c in v.checks], evidence=asdict(e))


def run_verdict_phase(exp: RunContext, summary: dict[str, Any], chosen: torch.Tensor, models: list[str]) -> None:
    acfg = exp.preset.attack
    if not acfg.checks:
        return
    with exact_float32():
        inputs, _labels, targets = check_inputs(exp, chosen)
        transfer_npz = None
        if "transfer" in acfg.checks and "baseline" in exp.models:
            transfer_npz = make_transfer_examples(exp, inputs, exp.data.x_test[inputs], targets)
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
