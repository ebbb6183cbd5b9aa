"""What runs exist and in which state, read from their run directories alone (for `ps` and attach)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import UserError
from engine.record.events import (
    END_STATES,
    AttackProgress,
    Epoch,
    Paused,
    PhaseStarted,
    ReadReport,
    Resumed,
    RunStarted,
)
from engine.record.rundir import PRESET_FILE, RunDir, iter_events
from engine.sessions.channel import ChannelError, engine_alive, send


@dataclass
class RunInfo:
    path: Path
    state: str  # running | paused | finished | failed | stopped | interrupted | starting
    preset: str
    phase: str
    progress: str
    updated: float


def run_state(run_dir: Path, events: list | None = None) -> RunInfo:
    """The run's state from its events (read from disk unless given) and whether its engine lives."""
    report = ReadReport()
    if events is None:
        events = list(iter_events(Path(run_dir) / "events.jsonl", report))
    preset, phase, progress, state = "?", "-", "", "starting"
    paused = False
    for e in events:
        d = e.data
        if isinstance(d, RunStarted):  # RunResumed too
            preset, state, paused = d.preset, "running", False
        elif e.type in END_STATES:
            state = END_STATES[e.type]
        elif isinstance(d, Paused):
            paused = True
        elif isinstance(d, Resumed):
            paused = False
        elif isinstance(d, PhaseStarted):
            phase = d.phase
        elif isinstance(d, Epoch):
            phase, progress = d.phase, f"epoch {d.epoch + 1}/{d.epochs}"
        elif isinstance(d, AttackProgress):
            phase, progress = "attack", f"{d.key} {d.attempted}/{d.n_attacks}"
    alive = engine_alive(run_dir)
    if state == "running":
        state = ("paused" if paused else "running") if alive else "interrupted"
    elif state == "starting" and events and not alive:
        state = "interrupted"
    elif not events and report.skipped and not alive:  # nothing usable: say so rather than "starting"
        state, progress = "unreadable", f"events.jsonl: {report.skipped} unreadable lines"
    return RunInfo(Path(run_dir), state, preset, phase, progress, events[-1].time if events else 0.0)


def list_runs(runs_dir: str | Path = "runs") -> list[RunInfo]:
    """Every run under `runs_dir`; one that cannot be read is listed as unreadable with the reason,
    and never hides the others."""
    root = Path(runs_dir)
    found = sorted({p.parent for p in root.rglob(PRESET_FILE)} if root.is_dir() else set())
    out = []
    for path in found:
        if not (path / "events.jsonl").exists():
            if not engine_alive(path):
                out.append(RunInfo(path, "unreadable", "?", "-", "no events.jsonl", 0.0))
            continue
        try:
            out.append(run_state(path))
        except (UserError, OSError) as exc:
            out.append(RunInfo(path, "unreadable", "?", "-", str(exc)[:60], 0.0))
    return out


def runs_as_json(runs: list[RunInfo]) -> list[dict[str, str | float | None]]:
    """`ps --json`: one object per run, oldest update first (the table's order). `updated` is Unix time
    (null when the run has no events yet), `updated_utc` the same instant in ISO 8601."""
    out = []
    for r in sorted(runs, key=lambda r: r.updated):
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.updated)) if r.updated else None
        out.append({"path": str(r.path), "state": r.state, "preset": r.preset, "phase": r.phase,
                    "progress": r.progress, "updated": r.updated or None, "updated_utc": when})
    return out


def format_runs(runs: list[RunInfo]) -> str:
    if not runs:
        return "no runs found"
    lines = [f"{'STATE':<12} {'PRESET':<14} {'PHASE':<9} {'PROGRESS':<28} {'UPDATED':<17} RUN"]
    for r in sorted(runs, key=lambda r: r.updated):
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.updated)) if r.updated else "-"
        lines.append(f"{r.state:<12} {r.preset:<14} {r.phase:<9} {r.progress:<28} {when:<17} {r.path}")
    return "\n".join(lines)


def stop_run(run_dir: str | Path, timeout: float = 120.0) -> str:
    rd = RunDir.open(run_dir)
    send(rd.path, "stop")
    deadline = time.time() + timeout
    while time.time() < deadline:
        if run_state(rd.path).state in ("stopped", "finished", "failed", "interrupted"):
            return f"stopped {rd.path}; continue with: defdistill-engine resume {rd.path}"
        time.sleep(0.2)
    raise ChannelError(f"the engine of {rd.path} did not stop within {timeout:.0f} s; try again, or kill it: "
                       "`defdistill-engine resume` continues from the last epoch")
