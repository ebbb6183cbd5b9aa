"""Temperature sweep: one baseline, then per T a teacher and a student, each attacked; sweep.json.

Every run is an ordinary run directory under the sweep directory, made by the same Session as a
single run, so an interrupted sweep resumes: finished runs are reused, a partial one is resumed
from its checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.errors import PresetError, RunDirError
from engine.paper import PAPER_TEMPERATURES
from engine.presets import load_preset
from engine.runs.events import EventType
from engine.runs.lock import RunLock
from engine.runs.rundir import RunDir, atomic_write_json, iter_events, read_json

# Laptop profile: 5 epochs with the lr halved every 2 (without the decay, SGD 0.1/0.9 leaves the
# T=100 student ~6 points below the baseline after 5 epochs on MNIST-t10k; with it, ~1 point).
QUICK_OVERRIDES = ("training.epochs=5", "training.lr_decay=0.5", "training.decay_every=2", "attack.samples=20")
PLAN_FILE = "sweep-plan.json"
SWEEP_FILE = "sweep.json"


def parse_temperatures(text: str | None) -> list[float]:
    if not text:
        return [float(t) for t in PAPER_TEMPERATURES]
    try:
        temps = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise PresetError(f"--temperatures {text!r} is not a comma-separated list of numbers; "
                          "e.g. --temperatures 1,2,5,10,20,30,40,50,100") from None
    bad = [t for t in temps if not (t > 0 and t < float("inf"))]
    if not temps or bad:
        raise PresetError(f"--temperatures {text!r}: every temperature must be a finite number > 0")
    return sorted(set(temps))


def parse_seeds(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise PresetError(f"--seeds {text!r} is not a comma-separated list of whole numbers; e.g. --seeds 0,1,2") \
            from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise PresetError(f"--seeds {text!r}: give distinct whole numbers, e.g. --seeds 0,1,2")
    return seeds


def run_name(temperature: float | None, seed: int | None = None) -> str:
    name = "baseline" if temperature is None else f"T-{temperature:g}"
    return name if seed is None else f"{name}-s{seed}"


def sweep_runs(overrides: Sequence[str], temperatures: Sequence[float],
               seeds: Sequence[int] | None = None) -> list[tuple[str, list[str]]]:
    # a sweep is about attacks: they run whatever the base preset says
    overrides = [*overrides, "attack.enabled=true"]
    runs = []
    for seed in seeds or [None]:
        seeded = overrides if seed is None else [*overrides, f"seed={seed}"]
        runs.append((run_name(None, seed), [*seeded, "distillation.phases=['baseline']",
                                            "attack.models=['baseline']"]))
        for t in temperatures:
            runs.append((run_name(t, seed), [*seeded, f"distillation.temperature={t!r}",
                                             "distillation.phases=['teacher', 'student']",
                                             "attack.models=['student']"]))
    return runs


def _finished(run_dir: Path) -> bool:
    return (run_dir / "summary.json").exists() and any(
        e.type == EventType.FINISHED for e in iter_events(run_dir / "events.jsonl"))


def open_run(preset_name: str, run_overrides: Sequence[str], run_dir: Path, data_root: str | None):
    """The session for one run of a sweep: resumed where a run directory exists, else created."""
    from engine.runs.session import ThreadSession

    if (run_dir / "preset.toml").exists():
        return ThreadSession.resume_from(run_dir, data_root=data_root)
    return ThreadSession.create(load_preset(preset_name, run_overrides), run_dir, data_root=data_root)


def prepare_sweep(preset_name: str, overrides: Sequence[str], temperatures: Sequence[float], sweep_dir: Path,
                  quick: bool, seeds: Sequence[int] | None) -> tuple[dict[str, Any], list[tuple[str, list[str]]]]:
    all_overrides = [*(QUICK_OVERRIDES if quick else ()), *overrides]
    plan = {"preset": preset_name, "overrides": all_overrides, "temperatures": list(temperatures), "quick": quick,
            "seeds": list(seeds) if seeds else None}
    load_preset(preset_name, all_overrides)  # every problem with the preset is reported before any work
    plan_path = sweep_dir / PLAN_FILE
    old = read_json(plan_path, "delete the sweep directory's sweep-plan.json and repeat the sweep command")
    if old is not None:
        if not isinstance(old, dict) or {k: old.get(k) for k in plan} != plan:
            raise RunDirError(f"{sweep_dir} holds a different sweep ({old.get('preset')}, {old.get('temperatures')}); "
                              "choose another --sweep-dir or repeat that sweep's arguments to resume it")
    else:
        try:
            sweep_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(plan_path, plan)
        except OSError as exc:
            raise RunDirError(f"cannot write sweep directory {sweep_dir} ({exc.strerror or exc}); "
                              "pass --sweep-dir with a writable folder") from None
    return plan, sweep_runs(all_overrides, temperatures, seeds)


def finish_sweep(sweep_dir: Path, plan: dict[str, Any], t0: float,
                 failed: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    result = collect_sweep(sweep_dir, plan, failed or {})
    result["seconds_this_invocation"] = time.time() - t0
    result.update(extra or {})
    atomic_write_json(sweep_dir / SWEEP_FILE, result)
    from engine.sweeps.figures import write_sweep_figures

    write_sweep_figures(sweep_dir, result)
    return result


def run_sweep(preset_name: str, overrides: Sequence[str], temperatures: Sequence[float], sweep_dir: Path, *,
              quick: bool = False, data_root: str | None = None, seeds: Sequence[int] | None = None,
              follow: Callable[[Any], int] | None = None) -> dict[str, Any]:
    """Train and attack every run of the sweep here, one after another (reusing finished ones)."""
    with RunLock.acquire(sweep_dir, "sweep"):
        plan, runs = prepare_sweep(preset_name, overrides, temperatures, sweep_dir, quick, seeds)
        t0 = time.time()
        for name, run_overrides in runs:
            run_dir = sweep_dir / name
            if _finished(run_dir):
                continue
            session = open_run(preset_name, run_overrides, run_dir, data_root)
            code = follow(session) if follow else _run_quietly(session)
            if code != 0:
                raise RunDirError(f"sweep run {run_dir} did not finish ({session.error or session.state}); fix it "
                                  f"and run the same sweep command again to resume")
        return finish_sweep(sweep_dir, plan, t0)


def _run_quietly(session) -> int:
    session.start()
    session.wait()
    return 0 if session.state == "finished" else 1


def _model_entry(run_dir: Path, model: str, baseline_dir: Path | None = None) -> dict[str, Any]:
    try:
        entry = _read_model_entry(run_dir, model)
    except (KeyError, TypeError, AttributeError) as exc:
        raise RunDirError(f"the results of {run_dir} have the wrong shape ({type(exc).__name__}: {str(exc)[:80]}); "
                          f"delete {run_dir} and run the same sweep command again to redo that run") from None
    from engine.sweeps.verdicts import run_verdicts

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
    summary = RunDir(run_dir).read_summary()
    entry: dict[str, Any] = {
        "run_dir": run_dir.name,
        "accuracy": summary["accuracy"][model],
        "mean_abs_logit": summary["mean_abs_logit"][model],
        "saturated_share": summary["saturated_share_by_model"][model],
        "success_rate": {}, "mean_features_changed": {}, "n_attacks": {}, "ended": {},
        "gradient_amplitude": summary.get("gradient_amplitude", {}).get(model),
        "seconds": summary["seconds"],
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


def _mean_std(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    return m, (sum((v - m) ** 2 for v in values) / len(values)) ** 0.5


def _aggregate(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Several seeds of one configuration: the mean where the single entry had a number, the
    spread (population std) beside it, and every seed's own entry."""
    if len(entries) == 1:
        return entries[0]
    out: dict[str, Any] = dict(entries[0])
    spread: dict[str, Any] = {}
    for key in ("accuracy", "mean_abs_logit", "saturated_share", "rho_adv"):
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
    base_summary = RunDir(sweep_dir / base[0]["run_dir"]).read_summary()
    from engine.sweeps.report import preset_and_meta

    preset, meta = preset_and_meta(sweep_dir / base[0]["run_dir"])  # so report.md needs sweep.json alone
    per_t = {f"{t:g}": e for t in plan["temperatures"] if (e := entries(t))}
    runs = [sweep_dir / e["run_dir"] for e in base] + [sweep_dir / x["run_dir"] for e in per_t.values() for x in e]
    by_t = {k: _aggregate(e) for k, e in per_t.items()}
    baseline = _aggregate(base)
    for k, group in per_t.items():
        by_t[k]["paired_with_baseline"] = _paired(base, group)
    return {
        "preset": plan["preset"], "quick": plan["quick"], "overrides": plan["overrides"], "seeds": plan.get("seeds"),
        "dataset": base_summary["dataset"], "data_note": base_summary["data_note"],
        "temperatures": [t for t in plan["temperatures"] if f"{t:g}" in by_t], "baseline": baseline,
        "by_temperature": by_t, "failed": failed,
        "setup": {"preset": preset, "meta": meta, "provenance": _provenance(runs)},
        "seconds": sum(e["seconds"] for e in base) + sum(x["seconds"] for e in per_t.values() for x in e),
    }
