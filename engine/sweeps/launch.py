"""A sweep as an engine process of its own (what the dashboard's `w` starts): like a run's engine,
it has its own session, so a dropped SSH connection never reaches it, and it can be attached."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from engine.deployment import label as temperature_label
from engine.sessions.process_session import engine_command, spawn_detached
from engine.sweeps.plan import PLAN_FILE, SWEEP_FILE


def launch_sweep(preset_path: Path, sweep_dir: Path, *, after: Path | None = None, quick: bool = True,
                 temperatures: Sequence[float] | None = None, overrides: Sequence[str] = (),
                 data_root: str | None = None) -> tuple[subprocess.Popen, Path]:
    """Start `defdistill-engine sweep` detached; returns the process and its stderr log."""
    args = ["sweep", str(preset_path), "--sweep-dir", str(sweep_dir), "--quiet"]
    if quick:
        args.append("--quick")
    if after is not None:
        args += ["--after", str(after)]
    if temperatures:
        args += ["--temperatures", ",".join(temperature_label(t) for t in temperatures)]
    for o in overrides:
        args += ["--set", o]
    if data_root:
        args += ["--data-root", data_root]
    log = Path(tempfile.mkstemp(prefix="defdistill-sweep-", suffix=".log")[1])
    return spawn_detached(engine_command(*args), log), log


def sweep_state(sweep_dir: Path) -> str:
    """waiting (no plan yet) | running | finished (report.md, written last, is there)."""
    if (sweep_dir / SWEEP_FILE).exists() and (sweep_dir / "report.md").exists():
        return "finished"
    return "running" if (sweep_dir / PLAN_FILE).exists() else "waiting"
