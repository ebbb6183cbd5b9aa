"""A sweep's runs N at a time on this machine: each run an engine process of its own.

Small CNNs leave most of a GPU idle (kernel launches, not arithmetic, bound them), so several runs
on one GPU finish the sweep sooner than one after another. Each run is `defdistill-engine run` (or
`resume`) on its own run directory: the same engine, lock and run log as any run, its own CUDA
context, and a crash of one leaves the others going. A run that fails is reported in sweep.json
and the report while the rest completes, as on Ray.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from engine.record.events import SweepProgress
from engine.record.lock import RunLock
from engine.sessions.job import Job
from engine.sweeps.collect import finish_sweep
from engine.sweeps.plan import SweepRequest, finished, prepare_sweep
from engine.sweeps.result import SweepResult
from engine.sweeps.sweep_log import SweepLog, run_status, status_line


def _command(preset: str, overrides: list[str], run_dir: Path, data_root: str | None) -> list[str]:
    if (run_dir / "preset.toml").exists():
        return Job("resume", run_dir=str(run_dir), data_root=data_root).command_line()
    return Job("run", preset=preset, overrides=tuple(overrides), run_dir=str(run_dir),
               data_root=data_root).command_line()


def run_sweep_parallel(request: SweepRequest, *, parallel: int,
                       progress: Callable[[str], None] = print) -> SweepResult:
    sweep_dir, preset_name, data_root = request.sweep_dir, request.preset, request.data_root
    with RunLock.acquire(sweep_dir, "sweep"):
        plan, runs = prepare_sweep(request)
        names = [n for n, _ in runs]
        todo = [(n, o) for n, o in runs if not finished(sweep_dir / n)]
        log = SweepLog(sweep_dir)
        done: set[str] = set()
        failed: dict[str, str] = {}
        live: dict[str, tuple[subprocess.Popen, Path]] = {}
        t0 = time.time()
        log.emit(SweepProgress(stage="started", address=f"local x{parallel}",
                               runs=run_status(sweep_dir, names, done, failed)))
        try:
            while todo or live:
                while todo and len(live) < parallel:
                    name, run_overrides = todo.pop(0)
                    err = sweep_dir / f".{name}.stderr"
                    with open(err, "wb") as f:
                        proc = subprocess.Popen(_command(preset_name, run_overrides, sweep_dir / name, data_root),
                                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=f)
                    live[name] = (proc, err)
                time.sleep(0.2)
                ended = [n for n, (p, _) in live.items() if p.poll() is not None]
                for name in ended:
                    proc, err = live.pop(name)
                    if proc.returncode == 0:
                        done.add(name)
                    else:
                        lines = [ln for ln in err.read_text(errors="replace").splitlines() if ln.strip()]
                        failed[name] = (lines[-1] if lines else f"exit code {proc.returncode}")[-300:]
                    err.unlink(missing_ok=True)
                if ended:
                    status = run_status(sweep_dir, names, done, failed)
                    log.emit(SweepProgress(stage="progress", runs=status))
                    progress(status_line(status))
        finally:
            for proc, _ in live.values():  # interrupted: the runs stop with a checkpoint, resumable
                proc.terminate()
            for proc, _ in live.values():
                proc.wait()
        result = finish_sweep(sweep_dir, plan, t0, failed, {"parallel": parallel})
        log.emit(SweepProgress(stage="finished", runs=run_status(sweep_dir, names, done, failed), failures=failed))
        return result
