"""A sweep's plan: which runs it has (one baseline, then per T a teacher and a student, per seed),
the files that hold it, and its parsing and checking. Every other sweep module builds on this one."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.deployment import check_temperature
from engine.deployment import label as temperature_label
from engine.errors import PresetError, RunDirError
from engine.paper import PAPER_TEMPERATURES
from engine.presets import load_preset
from engine.record.events import EventType
from engine.record.rundir import atomic_write_json, iter_events, read_json

# Laptop profile: 5 epochs with the lr halved every 2 (without the decay, SGD 0.1/0.9 leaves the
# T=100 student ~6 points below the baseline after 5 epochs on MNIST-t10k; with it, ~1 point).
QUICK_OVERRIDES = ("training.epochs=5", "training.lr_decay=0.5", "training.decay_every=2", "attack.samples=20")
PLAN_FILE = "sweep-plan.json"
SWEEP_FILE = "sweep.json"


def parse_temperatures(text: str | None) -> list[float]:
    if not text:
        return [float(t) for t in PAPER_TEMPERATURES]
    items = [t for t in text.split(",") if t.strip()]
    if not items:
        raise PresetError(f"--temperatures {text!r} is not a comma-separated list of numbers; "
                          "e.g. --temperatures 1,2,5,10,20,30,40,50,100")
    return sorted({check_temperature(t.strip(), f"--temperatures {text!r}: temperature") for t in items})


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
    name = "baseline" if temperature is None else f"T-{temperature_label(temperature)}"
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


@dataclass(frozen=True)
class SweepRequest:
    """What a sweep command asks, as one validated value from the command line (or the dashboard's
    launcher) to an executor (here, --parallel, Ray): the preset and its overrides, the temperatures
    (None: the sweep directory's plan, else the paper's), the folder, the quick profile, the data root
    and the seeds (None: one run per temperature, unseeded)."""

    preset: str
    sweep_dir: Path
    overrides: tuple[str, ...] = ()
    temperatures: tuple[float, ...] | None = None
    quick: bool = False
    data_root: str | None = None
    seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sweep_dir", Path(self.sweep_dir))
        object.__setattr__(self, "overrides", tuple(self.overrides))
        if self.temperatures is not None:
            object.__setattr__(self, "temperatures", tuple(sorted({check_temperature(t) for t in self.temperatures})))
        if self.seeds is not None:
            seeds = tuple(self.seeds)
            if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
                raise PresetError(f"seeds {list(seeds)!r} must be whole numbers >= 0; e.g. --seeds 0,1,2")
            object.__setattr__(self, "seeds", seeds or None)


PLAN_CORE = ("preset", "overrides", "quick", "seeds")  # what makes two sweeps the same sweep; temperatures grow


def _core(preset_name: str, overrides: Sequence[str], quick: bool, seeds: Sequence[int] | None) -> dict[str, Any]:
    """A command's PLAN_CORE as the plan records it (the quick profile's overrides first)."""
    return {"preset": preset_name, "overrides": [*(QUICK_OVERRIDES if quick else ()), *overrides], "quick": quick,
            "seeds": list(seeds) if seeds else None}


def check_sweep_preset(preset_name: str, overrides: Sequence[str], quick: bool) -> None:
    """Every problem with the sweep's preset and overrides, as one PresetError, before any work."""
    load_preset(preset_name, _core(preset_name, overrides, quick, None)["overrides"])


def _differs(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What of the core differs between a sweep directory's plan and this command's, in words."""
    said = {"preset": "preset", "overrides": "--set/--quick overrides", "quick": "--quick", "seeds": "--seeds"}
    return ", ".join(f"{said[k]} {old.get(k)!r} here, {new[k]!r} asked" for k in PLAN_CORE if old.get(k) != new[k])


def read_plan(sweep_dir: Path) -> dict[str, Any] | None:
    old = read_json(sweep_dir / PLAN_FILE, "delete the sweep directory's sweep-plan.json and repeat the sweep command")
    if old is not None and (not isinstance(old, dict) or not all(k in old for k in (*PLAN_CORE, "temperatures"))):
        raise RunDirError(f"{sweep_dir / PLAN_FILE} has the wrong shape; delete it and repeat the sweep command")
    return old


def prepare_sweep(request: SweepRequest) -> tuple[dict[str, Any], list[tuple[str, list[str]]]]:
    """The sweep's plan, written or grown, and the runs this command asks for: the baseline per seed and
    the requested temperatures (None: every temperature of an existing plan, else the paper's).

    An existing sweep directory grows: temperatures it lacks join its plan, and only the requested runs
    are run (finished ones are reused by every executor). A different preset, --set, --quick or seed set
    would mix two sweeps in one table, so it is refused."""
    preset_name, overrides, temperatures = request.preset, request.overrides, request.temperatures
    sweep_dir, seeds = request.sweep_dir, request.seeds
    core = _core(preset_name, overrides, request.quick, seeds)
    check_sweep_preset(preset_name, overrides, request.quick)  # every problem with the preset: before any work
    old = read_plan(sweep_dir)
    if old is not None and _differs(old, core):
        raise RunDirError(f"{sweep_dir} holds a different sweep ({_differs(old, core)}); a sweep grows only by "
                          f"--temperatures: repeat its settings (`{resume_command(sweep_dir, old)}`) or choose "
                          "another --sweep-dir")
    if old is None:
        asked = list(temperatures) if temperatures else [float(t) for t in PAPER_TEMPERATURES]
        known: list[float] = []
    else:
        known = [float(t) for t in old["temperatures"]]
        asked = list(temperatures) if temperatures else known
    plan = {**core, "temperatures": sorted(set(known) | set(asked))}
    if plan != old:
        try:
            sweep_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(sweep_dir / PLAN_FILE, plan)
        except OSError as exc:
            raise RunDirError(f"cannot write sweep directory {sweep_dir} ({exc.strerror or exc}); "
                              "pass --sweep-dir with a writable folder") from None
    return plan, sweep_runs(core["overrides"], sorted(set(asked)), seeds)


def resume_command(sweep_dir: Path, plan: dict[str, Any]) -> str:
    """The exact command that resumes (and only resumes) the sweep of `plan` in `sweep_dir`."""
    quick = bool(plan.get("quick"))
    own = list(plan.get("overrides") or [])[len(QUICK_OVERRIDES) if quick else 0:]
    parts = ["defdistill-engine", "sweep", str(plan["preset"]), "--sweep-dir", str(sweep_dir)]
    parts += ["--quick"] if quick else []
    for o in own:
        parts += ["--set", o]
    if plan.get("seeds"):
        parts += ["--seeds", ",".join(str(s) for s in plan["seeds"])]
    return shlex.join(parts)


def sweep_complete(sweep_dir: Path, plan: dict[str, Any]) -> bool:
    """Every run of the plan finished and sweep.json written after the last of them."""
    return (sweep_dir / SWEEP_FILE).exists() and all(
        finished(sweep_dir / name) for name, _ in sweep_runs(plan["overrides"], plan["temperatures"], plan["seeds"]))


def newest_unfinished(runs_root: Path, preset_name: str) -> tuple[Path, dict[str, Any]] | None:
    """The newest sweep directory under `runs_root` of `preset_name` that is not complete (by its plan's
    time of writing): what re-running a sweep command without --sweep-dir picks up."""
    found = []
    for plan_path in runs_root.glob(f"*/{PLAN_FILE}"):
        try:
            plan = read_plan(plan_path.parent)
        except RunDirError:
            continue  # a damaged sweep is not picked up silently; naming it with --sweep-dir says what is wrong
        if plan is not None and plan["preset"] == preset_name and not sweep_complete(plan_path.parent, plan):
            found.append((plan_path.stat().st_mtime, plan_path.parent, plan))
    if not found:
        return None
    _, path, plan = max(found, key=lambda f: f[0])
    return path, plan


def same_sweep(plan: dict[str, Any], preset_name: str, overrides: Sequence[str], temperatures: Sequence[float] | None,
               quick: bool, seeds: Sequence[int] | None) -> bool:
    """Whether this command is the one that made `plan` (its temperatures, or none given)."""
    return not _differs(plan, _core(preset_name, overrides, quick, seeds)) and \
        (not temperatures or set(temperatures) == set(plan["temperatures"]))
