"""A Session whose engine is its own process: it outlives the dashboard (SSH drops, closed laptops).

Events come from the run directory's events.jsonl (replayed, then followed); commands go over the
run's command channel (a 0600 Unix socket). Attaching to a run is the same object, built from a
run directory instead of a launch.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from engine.deployment import check_temperature
from engine.errors import UserError
from engine.presets import load_preset
from engine.record.rundir import EVENTS_FILE, default_run_dir
from engine.sessions.channel import ChannelError, engine_alive, engine_pid, send
from engine.sessions.job import Job
from engine.sessions.listing import run_state
from engine.sessions.replay import ReplaySession
from engine.steps.request import AttackRequest

ENGINE_NICE = 10  # the engine yields the CPU to the dashboard on the same machine


def engine_command(*args: str) -> list[str]:
    """defdistill-engine's command line (a sweep: the one engine job that is not a Job)."""
    return [sys.executable, "-m", "engine.cli", *args]


def spawn_detached(cmd: list[str], log_path: Path, nice: int = ENGINE_NICE) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        # a session of its own: a hung-up terminal (SIGHUP) or Ctrl-C in the dashboard never reaches it
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                start_new_session=True, preexec_fn=(lambda: os.nice(nice)) if nice else None)


def engine_nice(device: str) -> int:
    """A CPU engine yields the cores to the dashboard; a GPU engine's CPU work only feeds the GPU,
    and at nice 10 the UI would starve the device instead."""
    on_gpu = device == "cuda" or (device == "auto" and nvidia_gpu_visible())
    return 0 if on_gpu else ENGINE_NICE


def nvidia_gpu_visible() -> bool:
    """Whether an engine with device "auto" would find a CUDA GPU, told without importing torch (the
    dashboard's start stays light): an NVIDIA driver with a GPU, not hidden by CUDA_VISIBLE_DEVICES."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


class ProcessSession(ReplaySession):
    def __init__(self, run_dir: str | Path, process: subprocess.Popen | None = None) -> None:
        super().__init__(run_dir, follow=True, poll=0.1)
        self.process = process

    read_only = False
    detachable = True

    @classmethod
    def launch(cls, preset: str, overrides: Sequence[str] = (), run_dir: str | Path | None = None, *,
               data_root: str | None = None, download: bool = False, wait_seconds: float = 300) -> ProcessSession:
        """Start `defdistill-engine run` detached; its one-line error (bad data, unwritable folder)
        is raised here, before any UI, as the headless engine would print it."""
        p = load_preset(preset, overrides)  # preset errors at once, without starting anything
        target = Path(run_dir) if run_dir else default_run_dir(p.name)
        job = Job("run", preset=preset, overrides=tuple(overrides), run_dir=str(target), data_root=data_root,
                  download=download)
        fd, log = tempfile.mkstemp(prefix="defdistill-engine-", suffix=".log")
        os.close(fd)
        proc = spawn_detached(job.command_line(), Path(log), nice=engine_nice(p.device))
        deadline = time.time() + wait_seconds
        while time.time() < deadline:
            if (target / EVENTS_FILE).exists() and (target / EVENTS_FILE).stat().st_size > 0:
                return cls(target, proc)
            if proc.poll() is not None:
                lines = [ln for ln in Path(log).read_text(errors="replace").splitlines() if ln.strip()]
                last = lines[-1] if lines else f"the engine exited with code {proc.returncode}"
                raise UserError(last.split("error: ", 1)[-1])
            time.sleep(0.05)
        raise UserError(f"the engine did not start within {wait_seconds:.0f} s (log: {log}); check it and retry")

    @classmethod
    def attach(cls, run_dir: str | Path) -> ProcessSession:
        return cls(run_dir)

    def engine_pid(self) -> int | None:
        return engine_pid(self.run_dir)

    # -- commands over the channel -------------------------------------------------------------
    def pause(self) -> None:
        send(self.run_dir, "pause")

    def resume(self) -> None:
        send(self.run_dir, "resume")

    def set_temperature(self, temperature: float) -> float:
        t = check_temperature(temperature)
        send(self.run_dir, "set_temperature", temperature=t)
        return t

    def attack(self, request: AttackRequest) -> None:
        if engine_alive(self.run_dir):
            send(self.run_dir, "attack", **request.to_dict())
            return
        if self.state != "finished":
            raise ChannelError(f"the run has no engine and has not finished; `defdistill-engine resume "
                               f"{self.run_dir}` first")
        # a finished run's engine has exited: a new one attacks it and appends to the same log
        job = Job.attack(str(self.run_dir), request)
        self.process = spawn_detached(job.command_line(), Path(tempfile.mkstemp(prefix="defdistill-attack-")[1]))

    def stop(self) -> None:
        if engine_alive(self.run_dir):
            send(self.run_dir, "stop")

    # -- state -----------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        if self.process is not None:
            self.process.poll()  # reap our own engine once it exits
        following = self._thread.is_alive()
        state = run_state(self.run_dir, self.history() if following else None).state
        if state == "interrupted" and following:  # the engine is gone; the log may hold lines the tail has not read yet
            state = run_state(self.run_dir).state
        return state

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.time() + timeout
        while deadline is None or time.time() < deadline:
            if self.state in ("finished", "failed", "stopped", "interrupted"):
                return True
            time.sleep(0.1)
        return False
