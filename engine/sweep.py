"""Temperature sweep: one baseline, then per T a teacher and a student, each attacked; sweep.json.

Every run is an ordinary run directory under the sweep directory, made by the same Session as a
single run, so an interrupted sweep resumes: finished runs are reused, a partial one is resumed
from its checkpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.errors import PresetError, RunDirError
from engine.events import EventType
from engine.paper import PAPER_TEMPERATURES
from engine.presets import load_preset
from engine.rundir import atomic_write_json, iter_events

QUICK_OVERRIDES = ("training.epochs=5", "attack.samples=20")
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


def run_name(temperature: float | None) -> str:
    return "baseline" if temperature is None else f"T-{temperature:g}"


def sweep_runs(overrides: Sequence[str], temperatures: Sequence[float]) -> list[tuple[str, list[str]]]:
    # a sweep is about attacks: they run whatever the base preset says
    overrides = [*overrides, "attack.enabled=true"]
    runs = [("baseline", [*overrides, "distillation.phases=['baseline']", "attack.models=['baseline']"])]
    for t in temperatures:
        runs.append((run_name(t), [*overrides, f"distillation.temperature={t!r}",
                                   "distillation.phases=['teacher', 'student']", "attack.models=['student']"]))
    return runs


def _finished(run_dir: Path) -> bool:
    return (run_dir / "summary.json").exists() and any(
        e.type == EventType.FINISHED for e in iter_events(run_dir / "events.jsonl"))


def run_sweep(preset_name: str, overrides: Sequence[str], temperatures: Sequence[float], sweep_dir: Path, *,
              quick: bool = False, data_root: str | None = None,
              follow: Callable[[Any], int] | None = None) -> dict[str, Any]:
    """Train and attack every run of the sweep (reusing finished ones), then write sweep.json."""
    from engine.session import ThreadSession

    all_overrides = [*(QUICK_OVERRIDES if quick else ()), *overrides]
    plan = {"preset": preset_name, "overrides": all_overrides, "temperatures": list(temperatures), "quick": quick}
    load_preset(preset_name, all_overrides)  # every problem with the preset is reported before any work
    plan_path = sweep_dir / PLAN_FILE
    if plan_path.exists():
        old = json.loads(plan_path.read_text())
        if {k: old.get(k) for k in plan} != plan:
            raise RunDirError(f"{sweep_dir} holds a different sweep ({old.get('preset')}, {old.get('temperatures')}); "
                              "choose another --sweep-dir or repeat that sweep's arguments to resume it")
    else:
        try:
            sweep_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(plan_path, plan)
        except OSError as exc:
            raise RunDirError(f"cannot write sweep directory {sweep_dir} ({exc.strerror or exc}); "
                              "pass --sweep-dir with a writable folder") from None
    t0 = time.time()
    for name, run_overrides in sweep_runs(all_overrides, temperatures):
        run_dir = sweep_dir / name
        if _finished(run_dir):
            continue
        if (run_dir / "preset.toml").exists():
            session = ThreadSession.resume_from(run_dir, data_root=data_root)
        else:
            session = ThreadSession.create(load_preset(preset_name, run_overrides), run_dir, data_root=data_root)
        code = follow(session) if follow else _run_quietly(session)
        if code != 0:
            raise RunDirError(f"sweep run {run_dir} did not finish ({session.error or session.state}); fix it and "
                              f"run the same sweep command again to resume")
    result = collect_sweep(sweep_dir, plan)
    result["seconds_this_invocation"] = time.time() - t0
    atomic_write_json(sweep_dir / SWEEP_FILE, result)
    from engine.figures import write_sweep_figures

    write_sweep_figures(sweep_dir, result)
    return result


def _run_quietly(session) -> int:
    session.start()
    session.wait()
    return 0 if session.state == "finished" else 1


def _model_entry(run_dir: Path, model: str) -> dict[str, Any]:
    summary = json.loads((run_dir / "summary.json").read_text())
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
        if path.name.endswith("-gradients.json"):
            continue
        rec = json.loads(path.read_text())
        out = rec["output"]
        entry["success_rate"][out] = rec["success_rate"]
        entry["mean_features_changed"][out] = rec["mean_features_changed"]
        entry["n_attacks"][out] = rec["n_attacks"]
        entry["ended"][out] = rec["ended"]
        if out == "softmax":
            entry["rho_adv"] = rec["rho_adv"]
            entry["rho_adv_is_lower_bound"] = rec["is_lower_bound"]
    return entry


def collect_sweep(sweep_dir: Path, plan: dict[str, Any]) -> dict[str, Any]:
    base_summary = json.loads((sweep_dir / "baseline" / "summary.json").read_text())
    by_t = {f"{t:g}": {"temperature": t, **_model_entry(sweep_dir / run_name(t), "student")}
            for t in plan["temperatures"]}
    baseline = _model_entry(sweep_dir / "baseline", "baseline")
    return {
        "preset": plan["preset"], "quick": plan["quick"], "overrides": plan["overrides"],
        "dataset": base_summary["dataset"], "data_note": base_summary["data_note"],
        "temperatures": plan["temperatures"], "baseline": baseline, "by_temperature": by_t,
        "seconds": baseline["seconds"] + sum(v["seconds"] for v in by_t.values()),
    }
