"""A sweep run here, one run after another (the local executor; parallel.py and ray_sweep.py are the
others): one baseline, then per T a teacher and a student, each attacked; then sweep.json.

Every run is an ordinary run directory under the sweep directory, made by the same Session as a
single run, so an interrupted sweep resumes: finished runs are reused, a partial one is resumed
from its checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.presets import load_preset
from engine.record.lock import RunLock
from engine.sweeps.collect import finish_sweep
from engine.sweeps.plan import SweepRequest, finished, prepare_sweep
from engine.sweeps.result import SweepResult


def open_run(preset_name: str, run_overrides: Sequence[str], run_dir: Path, data_root: str | None):
    """The session for one run of a sweep: resumed where a run directory exists, else created."""
    from engine.sessions.thread_session import ThreadSession

    if (run_dir / "preset.toml").exists():
        return ThreadSession.resume_from(run_dir, data_root=data_root)
    return ThreadSession.create(load_preset(preset_name, run_overrides), run_dir, data_root=data_root)


class SweepStopped(Exception):
    """A run of the sweep was stopped (Ctrl-C, SIGTERM, `stop`): the sweep stops with it, resumable."""


def run_sweep(request: SweepRequest, *, follow: Callable[[Any], int] | None = None) -> SweepResult:
    """Train and attack every requested run of the sweep here, one after another (reusing finished ones).

    A run that fails, or that the engine refuses (a model collapsed to chance), is marked in sweep.json
    with its reason and the sweep goes on with the next, as --parallel and Ray do; the caller exits 1.
    A run that was stopped stops the sweep (a person asked for it)."""
    sweep_dir, preset_name, data_root = request.sweep_dir, request.preset, request.data_root
    with RunLock.acquire(sweep_dir, "sweep"):
        plan, runs = prepare_sweep(request)
        t0 = time.time()
        failed: dict[str, str] = {}
        for name, run_overrides in runs:
            run_dir = sweep_dir / name
            if finished(run_dir):
                continue
            try:
                session = open_run(preset_name, run_overrides, run_dir, data_root)
            except UserError as exc:  # e.g. a damaged checkpoint of this run only: the others go on
                failed[name] = str(exc)[:300]
                continue
            follow(session) if follow else _run_quietly(session)
            if session.state == "stopped":
                raise SweepStopped(f"the sweep stopped at {run_dir}; run the same sweep command again to resume it")
            if session.state != "finished":
                failed[name] = (session.error or session.state)[:300]
        return finish_sweep(sweep_dir, plan, t0, failed)


def _run_quietly(session) -> int:
    session.start()
    session.wait()
    return 0 if session.state == "finished" else 1
