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
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.record.events import SweepProgress
from engine.record.lock import RunLock
from engine.record.rundir import atomic_write_json
from engine.sweeps.collect import finish_sweep
from engine.sweeps.plan import SweepRequest, finished, prepare_sweep
from engine.sweeps.result import SweepResult
from engine.sweeps.sweep_log import SweepLog, run_status, status_line

MAX_RETRIES = 3


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install 'defdistill[ray]' (or pip install ray)") from None
    return ray


def run_task(preset: str, overrides: list[str], run_dir: str, data_root: str | None) -> dict[str, Any]:
    """Body of one Ray task: create or resume the run, take it to its end, say where it ran."""
    from engine.record.rundir import EVENTS_FILE
    from engine.sessions.channel import write_pid
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


def task_gpus(requested: str, cluster_gpus: float, runs_per_gpu: int) -> float:
    """GPUs each run's task asks for, decided from the cluster's resources (never from the driver's
    own device: a CPU head node drives GPU workers). Ray hides GPUs from a task that asks for 0, so
    "auto" on a cluster with GPUs must ask for them, and "cuda" on one without is an error now,
    not a failure in every task later. Several small runs share a GPU: 1/runs_per_gpu each."""
    if requested == "cpu":
        return 0.0
    if cluster_gpus <= 0:
        if requested == "cuda":
            raise UserError("device = 'cuda' but the Ray cluster has no GPU; use --set device=auto or cpu, or add "
                            "GPU nodes")
        return 0.0
    return 1.0 / runs_per_gpu


def run_sweep_on_ray(request: SweepRequest, *, address: str | None, num_cpus: int | None = None,
                     runs_per_gpu: int = 1, progress=print) -> SweepResult:
    ray = _import_ray()

    # every node reads and writes the same absolute paths (a shared file system)
    request = replace(request, sweep_dir=request.sweep_dir.resolve(),
                      data_root=str(Path(request.data_root).resolve()) if request.data_root else None)
    with RunLock.acquire(request.sweep_dir, "sweep"):  # one driver per sweep directory; each task locks its own run
        return _run_on_ray(ray, request, address, num_cpus, runs_per_gpu, progress)


def _run_on_ray(ray: Any, request: SweepRequest, address: str | None, num_cpus: int | None, runs_per_gpu: int,
                progress: Any) -> dict[str, Any]:
    from engine.presets import load_preset

    preset_name, sweep_dir, data_root = request.preset, request.sweep_dir, request.data_root
    plan, runs = prepare_sweep(request)
    preset_path = preset_name if not preset_name.endswith(".toml") else str(Path(preset_name).resolve())
    requested = load_preset(preset_name, plan["overrides"]).device
    if address in (None, "", "local"):
        # a local instance talks to itself only: keep it on loopback
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    else:
        host = address.rsplit(":", 1)[0] if address != "auto" else os.environ.get("RAY_ADDRESS", "").rsplit(":", 1)[0]
        local = host.startswith("127.") or host == "localhost"
        ray.init(address=address, log_to_driver=False, **({"_node_ip_address": "127.0.0.1"} if local else {}))
    gpus = task_gpus(requested, float(ray.cluster_resources().get("GPU", 0)), runs_per_gpu)
    share = f"{gpus:g} GPU" if gpus else "CPU only"
    progress(f"sweep on Ray: {share} per run "
             f"(preset device {requested!r}, cluster GPUs {ray.cluster_resources().get('GPU', 0):g})")
    task = ray.remote(max_retries=MAX_RETRIES)(run_task).options(num_cpus=1, num_gpus=gpus)
    log = SweepLog(sweep_dir)
    t0 = time.time()
    names = [n for n, _ in runs]
    pending = {task.remote(preset_path, o, str(sweep_dir / n), data_root): n
               for n, o in runs if not finished(sweep_dir / n)}
    done: set[str] = set()
    failed: dict[str, str] = {}
    placed: dict[str, dict[str, Any]] = {}
    log.emit(SweepProgress(stage="started", address=address or "local",
                           runs=run_status(sweep_dir, names, done, failed)))
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
            status = run_status(sweep_dir, names, done, failed)
            log.emit(SweepProgress(stage="progress", runs=status))
            progress(status_line(status))
    finally:
        ray.shutdown()
    atomic_write_json(sweep_dir / "placement.json", placed)
    result = finish_sweep(sweep_dir, plan, t0, failed, {"ray": {"address": address or "local", "tasks": placed}})
    log.emit(SweepProgress(stage="finished", runs=run_status(sweep_dir, names, done, failed), failures=failed))
    return result
