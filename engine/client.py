"""The engine's client interface: everything the dashboard may use, and nothing that imports torch.

The dashboard (tui/) imports this module and no other part of the engine; an import-linter contract
in the suite holds it to that (pyproject.toml, [tool.importlinter]). A dashboard watches an engine
process (launch, attach), a run directory (replay) or, only with `--in-process`, the engine itself:
that session and everything that touches torch are imported when it is opened, not before.

Sweeps the dashboard starts are engine processes of their own: the engine plans, runs and reports
them; the dashboard only reads their progress (SweepWatch). Reports and figures are written by an
engine process too (result_files), so matplotlib stays out of the dashboard as well.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.command_line import (
    RUN_DIR_COMPLETION,
    OneLineParser,
    add_completion,
    linux_only,
    preset_argument,
    version_line,
)
from engine.deployment import DEPLOYED, check_temperature, trained_temperature
from engine.deployment import label as temperature_label
from engine.errors import EXIT_USER_ERROR, UserError
from engine.paper import PAPER_TEMPERATURES
from engine.record.events import (
    AttackFinished,
    AttackProgress,
    AttackStarted,
    Batch,
    Checkpoint,
    CWFinished,
    Epoch,
    Event,
    Failed,
    Finished,
    Notice,
    Paused,
    PhaseFinished,
    PhaseStarted,
    Probes,
    Resumed,
    RunResumed,
    RunStarted,
    RunSummary,
    SoftLabels,
    Stopped,
    TemperatureChanged,
    VerdictMade,
)
from engine.record.rundir import RunDir
from engine.sessions.listing import RunInfo, format_runs, list_runs
from engine.sessions.process_session import ProcessSession
from engine.sessions.replay import ReplaySession
from engine.sessions.session import Session
from engine.sessions.telemetry import Sample, Telemetry
from engine.steps.request import METHODS as ATTACK_METHODS
from engine.steps.request import OUTPUTS as ATTACK_OUTPUTS
from engine.steps.request import AttackRequest
from engine.sweeps.launch import launch_sweep, sweep_state
from engine.sweeps.plan import PLAN_FILE
from engine.sweeps.progress import sweep_progress

__all__ = [
    "ATTACK_METHODS", "ATTACK_OUTPUTS", "DEPLOYED", "EXIT_USER_ERROR", "PAPER_TEMPERATURES",
    "RUN_DIR_COMPLETION", "AttackFinished", "AttackProgress", "AttackRequest", "AttackStarted", "Batch",
    "CWFinished", "Checkpoint", "Epoch", "Event", "Failed", "Finished", "Notice", "OneLineParser", "Paused",
    "PhaseFinished", "PhaseStarted", "Probes", "Resumed", "RunInfo", "RunResumed", "RunStarted", "RunSummary",
    "Sample", "Session", "SoftLabels", "Stopped", "SweepWatch", "Telemetry", "TemperatureChanged", "UserError",
    "VerdictMade", "add_completion", "attach", "check_temperature", "format_runs", "in_process", "launch",
    "linux_only", "list_runs", "preset_argument", "replay", "result_files", "temperature_label",
    "trained_temperature", "version_line",
]


def replay(run_dir: str | Path) -> Session:
    """A run directory watched read-only (followed while it is written)."""
    return ReplaySession(run_dir)


def launch(preset: str, overrides: Sequence[str] = (), run_dir: str | Path | None = None, *,
           data_root: str | None = None, download: bool = False) -> Session:
    """A new run in an engine process of its own (it outlives the dashboard); its one-line error, if
    the preset or data are wrong, is raised here before any UI."""
    return ProcessSession.launch(preset, overrides, run_dir, data_root=data_root, download=download)


def attach(target: str | Path) -> Session:
    """A run's engine (live and steerable; a finished run: its results), or a sweep's current run
    with the sweep's progress (session.sweep_dir)."""
    target = Path(target)
    if (target / PLAN_FILE).exists():
        _line, run = sweep_progress(target)
        if run is None:
            raise UserError(f"no run of the sweep {target} has started yet; attach again in a moment")
        session = ProcessSession.attach(run)
        session.sweep_dir = target
        return session
    return ProcessSession.attach(RunDir.open(target).path)


def in_process(preset: str, overrides: Sequence[str] = (), run_dir: str | Path | None = None, *,
               data_root: str | None = None, download: bool = False) -> Session:
    """The engine in a thread of the caller's process (it ends with it). Imports torch."""
    from engine.presets import load_preset
    from engine.sessions.thread_session import ThreadSession

    return ThreadSession.create(load_preset(preset, list(overrides)), run_dir, data_root=data_root,
                                download=True if download else None)


class SweepWatch:
    """A temperature sweep on screen: started here as an engine process of its own (`start`), or the
    sweep a session was attached to. The engine runs it, writes sweep.json, figures and report.md;
    this only reads how far it is (`line`)."""

    def __init__(self, sweep_dir: Path, process: subprocess.Popen | None = None, log: Path | None = None) -> None:
        self.sweep_dir = sweep_dir
        self.process = process
        self.log = log

    @classmethod
    def start(cls, preset_path: Path, sweep_dir: Path, *, after: Path | None = None,
              temperatures: Sequence[float] | None = None, overrides: Sequence[str] = (),
              data_root: str | None = None) -> SweepWatch:
        """`defdistill-engine sweep --quick` of the preset, started once the engine of `after` has ended."""
        process, log = launch_sweep(preset_path, sweep_dir, after=after, temperatures=temperatures,
                                    overrides=overrides, data_root=data_root)
        return cls(sweep_dir, process, log)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def line(self) -> str:
        """One line: "sweep done: REPORT", "sweep failed: WHY", "sweep waiting ...", or its progress."""
        state = sweep_state(self.sweep_dir)
        if state == "finished":
            return f"sweep done: {self.sweep_dir / 'report.md'}"
        proc = self.process
        if proc is not None and proc.poll() not in (None, 0):
            text = self.log.read_text(errors="replace") if self.log is not None else ""
            last = [ln for ln in text.splitlines() if ln.strip()]
            return f"sweep failed: {(last[-1] if last else f'exit code {proc.returncode}')[-200:]}"
        if state == "waiting":
            return "sweep waiting for this run to end"
        try:
            return sweep_progress(self.sweep_dir)[0]
        except UserError as exc:
            return f"sweep unreadable: {exc}"

    @staticmethod
    def ended(line: str) -> bool:
        return line.startswith(("sweep done", "sweep failed"))


def result_files(run_dir: Path, sweep_dir: Path | None = None, timeout: float = 600) -> list[Path]:
    """report.md and its PNG figures for the run (or the sweep on screen), written now by an engine
    process (`defdistill-engine report PATH --json`): the caller never imports matplotlib."""
    path = sweep_dir if sweep_dir is not None and (sweep_dir / "sweep.json").exists() else run_dir
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "report", str(path), "--json"],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        last = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise UserError((last[-1] if last else f"report exited with code {proc.returncode}").split("error: ", 1)[-1])
    return [Path(p) for p in json.loads(proc.stdout)["files"]]
