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

from engine.device import cuda_available
from engine.errors import UserError
from engine.presets import load_preset
from engine.runs.channel import ChannelError, engine_alive, engine_pid, send
from engine.runs.control import check_temperature
from engine.runs.listing import run_state
from engine.runs.replay import ReplaySession
from engine.runs.rundir import EVENTS_FILE, default_run_dir

ENGINE_NICE = 10  # the engine yields the CPU to the dashboard on the same machine


def engine_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.cli", *args]


def spawn_detached(cmd: list[str], log_path: Path, nice: int = ENGINE_NICE) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        # a session of its own: a hung-up terminal (SIGHUP) or Ctrl-C in the dashboard never reaches it
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                start_new_session=True, preexec_fn=(lambda: os.nice(nice)) if nice else None)


def engine_nice(device: str) -> int:
    """A CPU engine yields the cores to the dashboard; a GPU engine's CPU work only feeds the GPU,
    and at nice 10 the UI would starve the device instead."""
    on_gpu = device == "cuda" or (device == "auto" and cuda_available())
    return 0 if on_gpu else ENGINE_NICE


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
        args = ["run", preset, "--run-dir", str(target), "--quiet"]
        for o in overrides:
            args += ["--set", o]
        if data_root:
            args += ["--data-root", data_root]
        if download:
            args.append("--download")
        fd, log = tempfile.mkstemp(prefix="defdistill-engine-", suffix=".log")
        os.close(fd)
        proc = spawn_detached(engine_command(*args), Path(log), nice=engine_nice(p.device))
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

    def attack(self, models: Sequence[str] | None = None, outputs: Sequence[str] | None = None,
               samples: int | None = None, methods: Sequence[str] | None = None, checks: bool = False) -> None:
        if engine_alive(self.run_dir):
            send(self.run_dir, "attack", models=models, outputs=outputs, samples=samples, methods=methods,
                 checks=checks)
            return
        if self.state != "finished":
            raise ChannelError(f"the run has no engine and has not finished; `defdistill-engine resume "
                               f"{self.run_dir}` first")
        # a finished run's engine has exited: a new one attacks it and appends to the same log
        args = ["attack", str(self.run_dir), "--quiet"]
        for m in models or ():
            args += ["--model", m]
        for o in outputs or ():
            args += ["--output", o]
        for m in methods or ():
            args += ["--method", m]
        if checks:
            args.append("--checks")
        if samples:
            args += ["--samples", str(samples)]
        self.process = spawn_detached(engine_command(*args), Path(tempfile.mkstemp(prefix="defdistill-attack-")[1]))

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
