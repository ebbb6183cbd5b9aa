"""ThreadSession: the engine in a background thread of this process (the headless CLI, the engine
process, `defdistill-tui --in-process`). Each event goes to events.jsonl first and then to every
subscriber, so the run log and a live dashboard see the same stream."""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.data import DatasetSplit, load_dataset
from engine.device import describe_device, device_choice, gpu_uuid, resolve_device
from engine.errors import UserError
from engine.numerics import apply_policy, policy_record
from engine.presets import Preset, preset_from_toml
from engine.record.events import (
    Event,
    EventType,
    Failed,
    Finished,
    Notice,
    Payload,
    ReadReport,
    RunResumed,
    RunStarted,
    RunSummary,
    Stopped,
    make_event,
)
from engine.record.lock import RunLock, handed_over
from engine.record.rundir import RunDir, default_run_dir
from engine.sessions.session import EventFanout, Session
from engine.steps.control import Control, StopRequested
from engine.steps.request import AttackRequest


class ThreadSession(EventFanout, Session):
    """The engine in a background thread of this process."""

    def __init__(self, preset: Preset, rundir: RunDir, data: DatasetSplit, *, resumed: bool = False,
                 lock: RunLock | None = None) -> None:
        # One engine per run directory: held while this session's engine thread works.
        self.run_lock = lock or RunLock.acquire(rundir.path)
        self.preset = preset
        self.rundir = rundir
        self.run_dir = rundir.path
        self.data = data
        self.device = resolve_device(preset.device)
        self.control = Control()
        self._resumed = resumed
        EventFanout.__init__(self)
        self.read_report = ReadReport()  # lines of events.jsonl this session could not use
        self._history = rundir.read_events(self.read_report) if resumed else []
        self._seq = self._history[-1].seq if self._history else 0
        self._seq_lock = threading.Lock()  # seq order == log order == delivery order
        self._state = "starting"
        self._error: str | None = None
        self._attack_requests: list[AttackRequest] = []
        self._attack_only = False
        self.user_error = False
        # A dashboard sets `nice`: the engine thread (and the OpenMP workers it starts, which inherit
        # it) yields the CPU to the UI thread, so key presses stay fast while training fills the cores.
        self.nice = 0
        self._thread = threading.Thread(target=self._main, name="defdistill-engine", daemon=True)
        self._exp: Any = None
        self._log = rundir.open_event_log()

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def create(cls, preset: Preset, run_dir: str | Path | None = None, *, data_root: str | None = None,
               download: bool | None = None) -> ThreadSession:
        """Load the data (errors before anything is written), then create the run directory."""
        from engine.model_factory import build_model

        device = resolve_device(preset.device)
        build_model(preset)  # a factory, its logits' shape and its weights checked before anything is written
        data = load_dataset(preset.data, data_root, download)
        if data_root is not None:
            preset = preset.model_copy(update={"data": preset.data.model_copy(update={"root": str(data_root)})})
        target = Path(run_dir or default_run_dir(preset.name))
        with handed_over(target) as lock:
            rundir = RunDir.create(target, preset.to_toml(), describe_device(device), {
                "device_requested": preset.device, "gpu_uuid": gpu_uuid(device),
                "numerics": policy_record(preset.numerics.tf32_training, preset.numerics.deterministic)})
            return cls(preset, rundir, data, lock=lock)

    @classmethod
    def resume_from(cls, run_dir: str | Path, *, data_root: str | None = None) -> ThreadSession:
        rundir = RunDir.open(run_dir)
        with handed_over(rundir.path) as lock:  # before reading: a live engine may be writing these files
            preset = preset_from_toml(rundir.read_preset_toml(), str(rundir.path / "preset.toml"))
            if rundir.read_summary() is not None and _finished(rundir.read_events()):
                raise UserError(f"run {rundir.path} already finished; start a new one with `defdistill-engine run`")
            for ckpt in sorted((rundir.path / "checkpoints").glob("*.safetensors")):
                rundir.load_tensors(ckpt.stem)  # a corrupt checkpoint is reported now, before any work
            from engine.steps.experiment import check_checkpoints

            check_checkpoints(rundir, preset)
            data = load_dataset(preset.data, data_root)
            return cls(preset, rundir, data, resumed=True, lock=lock)

    @classmethod
    def for_attack(cls, run_dir: str | Path, request: AttackRequest, *, data_root: str | None = None) -> ThreadSession:
        """A session that only attacks the trained models of a finished run."""
        rundir = RunDir.open(run_dir)
        with handed_over(rundir.path) as lock:
            if rundir.read_summary() is None:
                raise UserError(f"run {rundir.path} has not finished training; "
                                f"`defdistill-engine resume {rundir.path}` first")
            preset = preset_from_toml(rundir.read_preset_toml(), str(rundir.path / "preset.toml"))
            for phase in preset.distillation.phases:  # attacking must never quietly train a model again
                if not rundir.checkpoint_path(phase).exists():
                    raise UserError(f"{rundir.checkpoint_path(phase)} is missing, so the {phase} cannot be attacked; "
                                    f"restore it, or delete summary.json and `defdistill-engine resume {rundir.path}` "
                                    "to train it again")
            from engine.steps.experiment import check_checkpoints

            check_checkpoints(rundir, preset)  # damaged: said now, before an event marks the run as failed
            session = cls(preset, rundir, load_dataset(preset.data, data_root), resumed=True, lock=lock)
        session._attack_only = True
        session.attack(request)
        return session

    # -- events ---------------------------------------------------------------------------
    def emit(self, payload: Payload) -> Event:
        with self._seq_lock:
            self._seq += 1
            event = make_event(payload, self._seq)
            # the run log first, so events.jsonl holds everything any viewer saw
            self._publish(event, before=lambda e: self._log.write(e.to_json() + "\n"))
        return event

    # -- commands -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def set_temperature(self, temperature: float) -> float:
        return self.control.set_temperature(temperature)

    def attack(self, request: AttackRequest) -> None:
        with self._lock:
            self._attack_requests.append(request)
            idle = self._state == "finished" and not self._thread.is_alive()
            if idle:
                try:
                    self.run_lock = RunLock.acquire(self.run_dir)
                except UserError:
                    self._attack_requests.pop()
                    raise
                # The run is done and its thread gone: attacks get a worker of their own.
                self._state = "running"
                self._thread = threading.Thread(target=self._guarded, name="defdistill-attacks", daemon=True,
                                                args=(self._attack_after_finish,))
                self._thread.start()

    def stop(self) -> None:
        self.control.stop()

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            thread = self._thread  # a finished run may have started an attack worker since
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(left)
            if thread is self._thread or thread.is_alive():
                return not thread.is_alive()

    @property
    def state(self) -> str:
        if self._state == "running" and self.control.paused:
            return "paused"
        return self._state

    @property
    def error(self) -> str | None:
        return self._error

    def engine_pid(self) -> int | None:
        return os.getpid()

    def problems(self) -> list[str]:
        return [self.read_report.line(self.rundir.events_path)] if self.read_report.skipped else []

    # -- the engine thread ----------------------------------------------------------------
    def _main(self) -> None:
        from engine.steps.experiment import Experiment

        if self.nice and self.device.type == "cpu":  # on a GPU the engine's CPU work only feeds the device
            _lower_this_thread(self.nice)
        if self.preset.threads:
            import torch

            torch.set_num_threads(self.preset.threads)
        apply_policy(self.preset.numerics.tf32_training, self.preset.numerics.deterministic)
        self._state = "running"
        exp = Experiment(self.preset, self.data, self.rundir, self.device, self.emit, self.control)
        self._exp = exp
        if self._resumed:
            exp.resume_temperature()
        start = RunResumed if self._resumed else RunStarted
        self.emit(start(preset=self.preset.name, dataset=self.data.name, data_note=self.data.note,
                        device=describe_device(self.device), phases=list(self.preset.distillation.phases),
                        temperature=exp.temperature, epochs=self.preset.training.epochs,
                        run_dir=str(self.run_dir), train_size=len(self.data.y_train),
                        test_size=len(self.data.y_test), device_requested=self.preset.device,
                        gpu_uuid=gpu_uuid(self.device)))
        self.emit(Notice(text=device_choice(self.preset.device, self.device)))
        exp.emit_probes()
        self._guarded(self._train_and_attack)

    def _train_and_attack(self) -> None:
        exp = self._exp
        exp.run_training()
        if self._attack_only:
            summary = self.rundir.read_summary() or exp.training_summary()
        else:
            summary = exp.training_summary()
        if self.preset.attack.enabled and not self._attack_only:
            with self._lock:
                self._attack_requests.insert(0, AttackRequest(checks=True))  # the preset's own attacks
        self._attack_queue(summary)

    def _attack_queue(self, summary: RunSummary) -> None:
        """Run queued attack requests until none is left, then finish (and go idle)."""
        from engine.steps.attack_phase import run_attack_phase

        t0 = time.time()
        while True:
            with self._lock:
                if not self._attack_requests:
                    break
                req = self._attack_requests.pop(0)
            summary = summary.with_rows(run_attack_phase(self._exp, summary, req))
        summary = replace(summary, seconds=_active_seconds(self.history(), time.time()))
        self.rundir.write_summary(summary)  # the file and the event: one contract
        self.emit(summary)
        self._state = "finished"
        self.emit(Finished(seconds=time.time() - t0))

    def _guarded(self, work: Callable[[], None]) -> None:
        try:
            work()
        except StopRequested:
            self._state = "stopped"
            self.emit(Stopped(phase=self._exp.phase, resume=f"defdistill-engine resume {self.run_dir}"))
        except UserError as exc:
            self.user_error = True
            self._fail(str(exc))
        except Exception as exc:  # the run log must say why a run died
            self._fail(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        finally:
            with self._lock:
                # A request that arrived after the queue emptied starts the next worker itself.
                if self._attack_requests and self._state == "finished":
                    self._thread = threading.Thread(target=self._guarded, name="defdistill-attacks", daemon=True,
                                                    args=(self._attack_after_finish,))
                    self._state = "running"
                    self._thread.start()
                else:
                    self._log.flush()
                    self.run_lock.release()  # the engine is done with the directory: another may take it

    def _attack_after_finish(self) -> None:
        self._state = "running"
        self._attack_queue(self.rundir.read_summary() or self._exp.training_summary())

    def _fail(self, message: str, trace: str | None = None) -> None:
        self._error = message
        self._state = "failed"
        self.emit(Failed(message=message, traceback=trace))


def _lower_this_thread(nice: int) -> None:
    import os

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        pass


def _finished(events: list[Event]) -> bool:
    return any(e.type == EventType.FINISHED for e in events)


def _active_seconds(events: list[Event], now: float) -> float:
    """Wall time the run's processes spent working, across resumes (gaps between them excluded)."""
    total, start, last = 0.0, None, None
    for e in events:
        if e.type in (EventType.RUN_STARTED, EventType.RUN_RESUMED):
            if start is not None and last is not None:
                total += last - start
            start = e.time
        last = e.time
    if start is not None:
        total += now - start
    return total
