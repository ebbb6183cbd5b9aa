"""sweep_dir/events.jsonl: a sweep's own progress events (runs pending, running, done, failed), written
by the drivers that run several runs at once (Ray, and `--parallel` on one machine)."""

from __future__ import annotations

from pathlib import Path

from engine.record.events import SweepProgress, make_event
from engine.sweeps.plan import finished


class SweepLog:
    def __init__(self, sweep_dir: Path) -> None:
        self.path = sweep_dir / "events.jsonl"
        self.seq = 0
        if self.path.exists():
            self.seq = sum(1 for _ in open(self.path, "rb"))

    def emit(self, payload: SweepProgress) -> None:
        self.seq += 1
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(make_event(payload, self.seq).to_json() + "\n")


def run_status(sweep_dir: Path, names: list[str], done: set[str], failed: dict[str, str]) -> dict[str, str]:
    out = {}
    for n in names:
        if n in failed:
            out[n] = "failed"
        elif n in done or finished(sweep_dir / n):
            out[n] = "done"
        elif (sweep_dir / n / "events.jsonl").exists():
            out[n] = "running"
        else:
            out[n] = "pending"
    return out


def status_line(status: dict[str, str]) -> str:
    counts = {k: sum(1 for v in status.values() if v == k) for k in ("pending", "running", "done", "failed")}
    return (f"sweep: {counts['done']} done, {counts['running']} running, {counts['pending']} pending, "
            f"{counts['failed']} failed")
