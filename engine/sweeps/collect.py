"""A sweep's result: every finished run's numbers and verdict, seeds aggregated, written as sweep.json.

The same collection follows every executor (here, --parallel, Ray), so sweep.json has one shape."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from engine.deployment import label as temperature_label
from engine.errors import RunDirError
from engine.record.events import RunSummary
from engine.record.rundir import RunDir, atomic_write_json, preset_and_meta, read_json
from engine.sweeps.plan import SWEEP_FILE, run_name
from engine.sweeps.result import SweepResult
from engine.sweeps.verdicts import run_verdicts


def finish_sweep(sweep_dir: Path, plan: dict[str, Any], t0: float,
                 failed: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> SweepResult:
    """Collect the sweep's finished runs, write sweep.json and return it typed."""
    result = collect_sweep(sweep_dir, plan, failed or {})
    result["seconds_this_invocation"] = time.time() - t0
    result.update(extra or {})
    atomic_write_json(sweep_dir / SWEEP_FILE, result)
    return SweepResult.from_json(result, sweep_dir / SWEEP_FILE)


def _model_entry(run_dir: Path, model: str, baseline_dir: Path | None = None) -> dict[str, Any]:
    try:
        entry = _read_model_entry(run_dir, model)
    except (KeyError, TypeError, AttributeError) as exc:
        raise RunDirError(f"the results of {run_dir} have the wrong shape ({type(exc).__name__}: {str(exc)[:80]}); "
                          f"delete {run_dir} and run the same sweep command again to redo that run") from None
    verdict = run_verdicts(run_dir, baseline_dir).get(model)
    if verdict is not None:
        entry["verdict"] = verdict
        ev = verdict["evidence"]
        if ev.get("transfer"):  # the best transfer attack and the gradient-free one, beside the others
            entry["success_rate"]["transfer"] = max(ev["transfer"].values())
            entry["transfer"] = ev["transfer"]
        if ev.get("blackbox"):
            entry["success_rate"]["simba"] = ev["blackbox"]["SimBA"]
        if ev.get("jsma_budget"):
            entry["jsma_budget"] = ev["jsma_budget"]
    return entry


def _read_model_entry(run_dir: Path, model: str) -> dict[str, Any]:
    summary = _summary(run_dir)
    support = summary.gradient_support.get(model)
    entry: dict[str, Any] = {
        "run_dir": run_dir.name,
        "run_id": _run_id(run_dir),
        "accuracy": summary.accuracy[model],
        "mean_abs_logit": summary.mean_abs_logit[model],
        "saturated_share": summary.saturated_share_by_model[model],
        "success_rate": {}, "mean_features_changed": {}, "n_attacks": {}, "ended": {},
        "gradient_amplitude": summary.gradient_amplitude.get(model),
        "gradient_support": asdict(support) if support else None,
        "gradient_pixel_share": support.pixel_share if support else None,
        "dead_unit_share": support.dead_unit_share if support else None,
        "seconds": summary.seconds,
    }
    for path in sorted((run_dir / "attacks").glob(f"{model}-*.json")):
        if path.name.endswith(("-gradients.json", "-budget.json", "-simba.json")):
            continue  # evidence files of the verdict, not attack records
        rec = read_json(path, f"delete it and run `defdistill-engine attack {run_dir}` to redo it")
        if rec.get("method", "jsma") != "jsma":  # a Carlini & Wagner attack: its cases and distances
            method, cases = rec["method"], rec["cases"]
            first = next(iter(cases.values()))
            entry["success_rate"][method] = first["success_rate"]
            entry.setdefault("cw_distance", {})[method] = {k: first[f"mean_{k}"] for k in ("l0", "l2", "linf")}
            entry.setdefault("cw", {})[method] = {
                "cases": cases, "samples": rec["samples"], "n_attacks": rec["n_attacks"], "seconds": rec["seconds"],
                "attacks_per_second": rec["attacks_per_second"], "median_const": rec["median_const"],
                "mean_iterations": rec["mean_iterations"], "reduced": rec.get("reduced", ""),
                "settings": rec["settings"]}
            continue
        out = rec["output"]
        entry["success_rate"][out] = rec["success_rate"]
        entry["mean_features_changed"][out] = rec["mean_features_changed"]
        entry["n_attacks"][out] = rec["n_attacks"]
        entry["ended"][out] = rec["ended"]
        if out == "softmax":
            entry["rho_adv"] = rec["rho_adv"]
            entry["rho_adv_is_lower_bound"] = rec["is_lower_bound"]
        entry.setdefault("inputs", {})[out] = rec.get("inputs")
    return entry


def _summary(run_dir: Path) -> RunSummary:
    summary = RunDir(run_dir).read_summary()
    if summary is None:
        raise RunDirError(f"{run_dir} has no summary.json: the run has not finished; delete {run_dir} and run the "
                          "same sweep command again to redo that run")
    return summary


def _run_id(run_dir: Path) -> str | None:
    """The id meta.json gave the run when it was created: the same id in a later sweep.json = the run reused."""
    meta = read_json(run_dir / "meta.json", "it only labels the report: delete it to go on without it")
    return meta.get("run_id") if isinstance(meta, dict) else None


def _mean_std(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    return m, (sum((v - m) ** 2 for v in values) / len(values)) ** 0.5


def aggregate_seeds(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Several seeds of one configuration: the mean where the single entry had a number, the
    spread (population std) beside it, and every seed's own entry."""
    if len(entries) == 1:
        return entries[0]
    out: dict[str, Any] = dict(entries[0])
    spread: dict[str, Any] = {}
    for key in ("accuracy", "mean_abs_logit", "saturated_share", "rho_adv", "gradient_pixel_share", "dead_unit_share"):
        vals = [e[key] for e in entries if e.get(key) is not None]
        if vals:
            out[key], spread[key] = _mean_std(vals)
    for key in ("success_rate", "mean_features_changed"):
        out[key], spread[key] = {}, {}
        for o in entries[0][key]:
            vals = [e[key][o] for e in entries if e[key].get(o) is not None]
            if vals:
                out[key][o], spread[key][o] = _mean_std(vals)
    if "cw_distance" in entries[0]:
        out["cw_distance"], spread["cw_distance"] = {}, {}
        for method, dist in entries[0]["cw_distance"].items():
            out["cw_distance"][method], spread["cw_distance"][method] = {}, {}
            for k in dist:
                vals = [e["cw_distance"][method][k] for e in entries
                        if e.get("cw_distance", {}).get(method, {}).get(k) is not None]
                if vals:
                    out["cw_distance"][method][k], spread["cw_distance"][method][k] = _mean_std(vals)
    out["spread"] = spread
    verdicts = [e["verdict"]["verdict"] for e in entries if e.get("verdict")]
    if verdicts:  # the seeds' verdicts side by side; the entry's own is the first seed's, with its evidence
        out["verdicts_by_seed"] = verdicts
    out["per_seed"] = entries
    out["run_dir"] = [e["run_dir"] for e in entries]
    out["run_id"] = [e["run_id"] for e in entries]
    return out


def _paired(base: list[dict[str, Any]], students: list[dict[str, Any]]) -> dict[str, Any]:
    """How many of a student's attacked held-out inputs the baseline attacked too (same seed).

    Each run attacks the first inputs of one seeded order that its own model classifies correctly,
    so a student and the baseline differ only where one of them misclassifies an input."""
    shared = total = 0
    for b, s in zip(base, students, strict=False):
        bi, si = (b.get("inputs") or {}).get("softmax"), (s.get("inputs") or {}).get("softmax")
        if bi and si:
            shared += len(set(bi) & set(si))
            total += len(si)
    return {"shared_inputs": shared, "inputs": total, "share": shared / total if total else None}


def _provenance(runs: list[Path]) -> dict[str, list[str]]:
    """The commits and torch versions the sweep's runs were made with (a resumed sweep may mix them)."""
    found: dict[str, set[str]] = {"commits": set(), "torch": set()}
    for run in runs:
        meta = read_json(run / "meta.json", "it only labels the report: delete it to go on without it")
        if isinstance(meta, dict):
            found["commits"].add(str(meta.get("git_commit") or "?")[:10])
            found["torch"].add(str(meta.get("torch") or "?"))
    return {k: sorted(v) for k, v in found.items()}


def collect_sweep(sweep_dir: Path, plan: dict[str, Any], failed: dict[str, str] | None = None) -> dict[str, Any]:
    failed = failed or {}
    seeds = plan.get("seeds") or [None]

    def entries(t: float | None) -> list[dict[str, Any]]:
        model = "baseline" if t is None else "student"
        found = []
        for seed in seeds:
            name = run_name(t, seed)
            if name not in failed and (sweep_dir / name / "summary.json").exists():
                found.append({"seed": seed, "temperature": t,
                              **_model_entry(sweep_dir / name, model, sweep_dir / run_name(None, seed))})
        return found

    base = entries(None)
    if not base:
        raise RunDirError(f"no baseline run of {sweep_dir} finished ({'; '.join(failed.values()) or 'none ran'})")
    base_summary = _summary(sweep_dir / base[0]["run_dir"])
    preset, meta = preset_and_meta(sweep_dir / base[0]["run_dir"])  # so report.md needs sweep.json alone
    per_t = {temperature_label(t): e for t in plan["temperatures"] if (e := entries(t))}
    runs = [sweep_dir / e["run_dir"] for e in base] + [sweep_dir / x["run_dir"] for e in per_t.values() for x in e]
    by_t = {k: aggregate_seeds(e) for k, e in per_t.items()}
    baseline = aggregate_seeds(base)
    for k, group in per_t.items():
        by_t[k]["paired_with_baseline"] = _paired(base, group)
    return {
        "preset": plan["preset"], "quick": plan["quick"], "overrides": plan["overrides"], "seeds": plan.get("seeds"),
        "dataset": base_summary.dataset, "data_note": base_summary.data_note,
        "temperatures": [t for t in plan["temperatures"] if temperature_label(t) in by_t], "baseline": baseline,
        "by_temperature": by_t, "failed": failed,
        "setup": {"preset": preset, "meta": meta, "provenance": _provenance(runs)},
        "seconds": sum(e["seconds"] for e in base) + sum(x["seconds"] for e in per_t.values() for x in e),
    }
