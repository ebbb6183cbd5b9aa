"""A temperature sweep on a Ray cluster: each run (temperature x seed) is a Ray task writing its run
directory with the same engine code as a local run. Workers that die are retried (Ray's own
bounded retry) and the retry resumes from the run's last checkpoint; a run that keeps failing is
reported in sweep.json and the report while the rest completes.

Ray is an optional extra (`pip install 'defdistill[ray]'`). On a real cluster every node needs
this package installed and the same paths for the data root and the sweep directory (a shared
file system).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.runs.events import SweepProgress, make_event
from engine.runs.lock import RunLock
from engine.runs.rundir import atomic_write_json
from engine.sweeps.sweep import _finished, finish_sweep, prepare_sweep

MAX_RETRIES = 3


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install 'defdistill[ray]' (or pip install ray)") from None
    return ray


def run_task(preset: str, overrides: list[str], run_dir: str, data_root: str | None) -> dict[str, Any]:
    """Body of one Ray task: create or resume the run, take it to its end, say where it ran."""
    from engine.runs.channel import write_pid
    from engine.runs.rundir import EVENTS_FILE
    from engine.sweeps.sweep import open_run

    path = Path(run_dir)
    resumed = (path / EVENTS_FILE).exists()
    session = open_run(preset, overrides, path, data_root)
    write_pid(path)  # which process holds the run (tests kill it to check retries)
    session.start()
    session.wait()
    if session.state != "finished":
        raise RuntimeError(f"{path.name}: {session.error or session.state}")
    import ray

    return {"run": path.name, "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
            "resumed": resumed}


class SweepLog:
    """sweep_dir/events.jsonl: the sweep's own progress events (tasks pending, running, done, failed)."""

    def __init__(self, sweep_dir: Path) -> None:
        self.path = sweep_dir / "events.jsonl"
        self.seq = 0
        if self.path.exists():
            self.seq = sum(1 for _ in open(self.path, "rb"))

    def emit(self, payload: SweepProgress) -> None:
        self.seq += 1
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(make_event(payload, self.seq).to_json() + "\n")


def _status(sweep_dir: Path, names: list[str], done: set[str], failed: dict[str, str]) -> dict[str, str]:
    out = {}
    for n in names:
        if n in failed:
            out[n] = "failed"
        elif n in done or _finished(sweep_dir / n):
            out[n] = "done"
        elif (sweep_dir / n / "events.jsonl").exists():
            out[n] = "running"
        else:
            out[n] = "pending"
    return out


def run_sweep_on_ray(preset_name: str, overrides: Sequence[str], temperatures: Sequence[float], sweep_dir: Path, *,
                     address: str | None, quick: bool = False, data_root: str | None = None,
                     seeds: Sequence[int] | None = None, num_cpus: int | None = None,
                     progress=print) -> dict[str, Any]:
    ray = _import_ray()

    sweep_dir = sweep_dir.resolve()
    data_root = str(Path(data_root).resolve()) if data_root else None
    with RunLock.acquire(sweep_dir, "sweep"):  # one driver per sweep directory; each task locks its own run
        return _run_on_ray(ray, preset_name, overrides, temperatures, sweep_dir, address, quick, data_root, seeds,
                           num_cpus, progress)


def _run_on_ray(ray: Any, preset_name: str, overrides: Sequence[str], temperatures: Sequence[float],
                sweep_dir: Path, address: str | None, quick: bool, data_root: str | None,
                seeds: Sequence[int] | None, num_cpus: int | None, progress: Any) -> dict[str, Any]:
    from engine.device import resolve_device
    from engine.presets import load_preset

    plan, runs = prepare_sweep(preset_name, overrides, temperatures, sweep_dir, quick, seeds)
    preset_path = preset_name if not preset_name.endswith(".toml") else str(Path(preset_name).resolve())
    wants_gpu = resolve_device(load_preset(preset_name, plan["overrides"]).device).type == "cuda"
    if address in (None, "", "local"):
        # a local instance talks to itself only: keep it on loopback
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    else:
        host = address.rsplit(":", 1)[0] if address != "auto" else os.environ.get("RAY_ADDRESS", "").rsplit(":", 1)[0]
        local = host.startswith("127.") or host == "localhost"
        ray.init(address=address, log_to_driver=False, **({"_node_ip_address": "127.0.0.1"} if local else {}))
    task = ray.remote(max_retries=MAX_RETRIES)(run_task).options(num_cpus=1, num_gpus=1 if wants_gpu else 0)
    log = SweepLog(sweep_dir)
    t0 = time.time()
    names = [n for n, _ in runs]
    pending = {task.remote(preset_path, o, str(sweep_dir / n), data_root): n
               for n, o in runs if not _finished(sweep_dir / n)}
    done: set[str] = set()
    failed: dict[str, str] = {}
    placed: dict[str, dict[str, Any]] = {}
    log.emit(SweepProgress(stage="started", address=address or "local", runs=_status(sweep_dir, names, done, failed)))
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)
            for ref in ready:
                name = pending.pop(ref)
                try:
                    placed[name] = ray.get(ref)
                    done.add(name)
                except Exception as exc:  # a run that kept failing: reported, the rest goes on
                    failed[name] = str(exc).strip().splitlines()[-1][:300]
            status = _status(sweep_dir, names, done, failed)
            counts = {k: sum(1 for v in status.values() if v == k) for k in ("pending", "running", "done", "failed")}
            log.emit(SweepProgress(stage="progress", runs=status))
            progress(f"sweep: {counts['done']} done, {counts['running']} running, {counts['pending']} pending, "
                     f"{counts['failed']} failed")
    finally:
        ray.shutdown()
    atomic_write_json(sweep_dir / "placement.json", placed)
    result = finish_sweep(sweep_dir, plan, t0, failed, {"ray": {"address": address or "local", "tasks": placed}})
    log.emit(SweepProgress(stage="finished", runs=_status(sweep_dir, names, done, failed), failures=failed))
    return result
