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

from engine.errors import RunDirError
from engine.presets import load_preset
from engine.runs.lock import RunLock
from engine.sweeps.collect import finish_sweep
from engine.sweeps.plan import finished, prepare_sweep


def open_run(preset_name: str, run_overrides: Sequence[str], run_dir: Path, data_root: str | None):
    """The session for one run of a sweep: resumed where a run directory exists, else created."""
    from engine.runs.thread_session import ThreadSession

    if (run_dir / "preset.toml").exists():
        return ThreadSession.resume_from(run_dir, data_root=data_root)
    return ThreadSession.create(load_preset(preset_name, run_overrides), run_dir, data_root=data_root)


def run_sweep(preset_name: str, overrides: Sequence[str], temperatures: Sequence[float], sweep_dir: Path, *,
              quick: bool = False, data_root: str | None = None, seeds: Sequence[int] | None = None,
              follow: Callable[[Any], int] | None = None) -> dict[str, Any]:
    """Train and attack every run of the sweep here, one after another (reusing finished ones)."""
    with RunLock.acquire(sweep_dir, "sweep"):
        plan, runs = prepare_sweep(preset_name, overrides, temperatures, sweep_dir, quick, seeds)
        t0 = time.time()
        for name, run_overrides in runs:
            run_dir = sweep_dir / name
            if finished(run_dir):
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
