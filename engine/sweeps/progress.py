"""A sweep's progress read from its run directories: for the dashboard attached to a sweep."""

from __future__ import annotations

from pathlib import Path

from engine.errors import RunDirError
from engine.record.rundir import read_json
from engine.sessions.listing import run_state
from engine.sweeps.plan import PLAN_FILE, sweep_runs


def sweep_progress(sweep_dir: str | Path) -> tuple[str, Path | None]:
    """One line on a sweep (runs done / running / pending / failed, from its run directories) and
    the run to watch: the one running now, else the most recently updated."""
    root = Path(sweep_dir)
    plan = read_json(root / PLAN_FILE, "attach to one of its runs instead, or repeat the sweep command to rebuild it")
    if not isinstance(plan, dict) or not isinstance(plan.get("temperatures"), list):
        raise RunDirError(f"{root / PLAN_FILE} is missing or has the wrong shape; attach to one of its runs instead, "
                          "or repeat the sweep command to rebuild it")
    names = [n for n, _ in sweep_runs(plan["overrides"], plan["temperatures"], plan.get("seeds"))]
    infos = {n: run_state(root / n) for n in names if (root / n / "events.jsonl").exists()}
    counts = {"done": 0, "running": 0, "failed": 0, "interrupted": 0}
    for info in infos.values():
        key = {"finished": "done", "paused": "running"}.get(info.state, info.state)
        if key in counts:
            counts[key] += 1
    pending = len(names) - len(infos)
    live = [i for i in infos.values() if i.state in ("running", "paused")]
    current = max(live or infos.values(), key=lambda i: i.updated, default=None)
    where = f" · now {current.path.name} {current.phase} {current.progress}" if current and live else ""
    line = (f"sweep {counts['done']}/{len(names)} done, {counts['running']} running, {pending} pending"
            + (f", {counts['failed']} failed" if counts["failed"] else "")
            + (f", {counts['interrupted']} interrupted" if counts["interrupted"] else "") + where)
    return line, current.path if current else None
