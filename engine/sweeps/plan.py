"""A sweep's plan: which runs it has (one baseline, then per T a teacher and a student, per seed),
the files that hold it, and its parsing and checking. Every other sweep module builds on this one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.errors import PresetError, RunDirError
from engine.paper import PAPER_TEMPERATURES
from engine.presets import load_preset
from engine.runs.events import EventType
from engine.runs.rundir import atomic_write_json, iter_events, read_json

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


def finished(run_dir: Path) -> bool:
    return (run_dir / "summary.json").exists() and any(
        e.type == EventType.FINISHED for e in iter_events(run_dir / "events.jsonl"))


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
