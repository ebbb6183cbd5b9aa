"""Session: the one interface the dashboard and the headless CLI use to run and steer an experiment.

`Session` is the interface and `EventFanout` the history-and-subscribers part its implementations
share. Nothing here imports torch: the dashboard holds sessions of an engine process
(process_session), of a run directory (replay), and only with `--in-process` the engine itself
(thread_session.ThreadSession).
"""

from __future__ import annotations

import threading
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from engine.record.events import Event
from engine.steps.request import AttackRequest

if TYPE_CHECKING:
    from engine.presets import Preset

Subscriber = Callable[[Event], None]


class Session(ABC):
    """Everything a front end (the dashboard, the headless CLI) may do with an experiment.

    Commands are thread-safe and return at once; a command the session cannot carry out raises a
    one-line UserError. Implementations: ThreadSession (the engine in this process),
    ProcessSession (an engine process of its own, launched or attached) and ReplaySession
    (read-only: a run directory replayed and followed).
    """

    preset: Preset
    run_dir: Path
    #: the session only watches: every steering command is refused
    read_only: bool = False
    #: the engine runs in a process of its own, so a viewer may leave it running (`close`)
    detachable: bool = False
    #: the failure, if any, is one the user can fix (exit code 2, not 1)
    user_error: bool = False
    #: the sweep this run belongs to, when the viewer was attached to a sweep
    sweep_dir: Path | None = None
    #: niceness of engine threads this session starts in this process (a dashboard sets 10)
    nice: int = 0

    @abstractmethod
    def subscribe(self, callback: Subscriber) -> None:
        """Call `callback(event)` for every future event (from the engine's or the reader's thread)."""

    @abstractmethod
    def history(self) -> list[Event]:
        """Every event so far, in order: lets a late subscriber rebuild its state."""

    @abstractmethod
    def start(self) -> None:
        """Start the engine (or the reader of an engine's log)."""

    @abstractmethod
    def pause(self) -> None:
        """Pause training or attacks at the next batch."""

    @abstractmethod
    def resume(self) -> None:
        """Continue after `pause`."""

    @abstractmethod
    def set_temperature(self, temperature: float) -> float:
        """Validate (one-line PresetError on <= 0, nan, inf) and apply at the next batch."""

    @abstractmethod
    def attack(self, request: AttackRequest) -> None:
        """Queue attacks (JSMA on the request's `outputs`, and its C&W `methods`); they run after training
        (or at once on a trained run). None means the preset's choice; `checks` measures the preset's
        masking checks and a verdict per model afterwards (the preset's own attack run always does)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the run: checkpoint at the next batch and end; `defdistill-engine resume` continues."""

    def close(self) -> None:  # noqa: B027 - a real default: sessions that follow nothing have nothing to close
        """Stop watching. The run itself is untouched: a detached engine goes on."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> bool:
        """True once the engine has ended (finished, stopped, failed or interrupted)."""

    @property
    @abstractmethod
    def state(self) -> str:
        """starting | running | paused | stopped | finished | failed | interrupted."""

    @property
    @abstractmethod
    def error(self) -> str | None:
        """The one line saying why the run failed, if it did."""

    def engine_pid(self) -> int | None:
        """The process the engine runs in, for telemetry; None when no engine is known."""
        return None

    def problems(self) -> list[str]:
        """What this session could not read (e.g. damaged lines of events.jsonl), one line each."""
        return []


class EventFanout:
    """Event history and subscribers, shared by the Session implementations."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._history: list[Event] = []

    def subscribe(self, callback: Subscriber) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def history(self) -> list[Event]:
        with self._lock:
            return list(self._history)

    def _publish(self, event: Event, before: Callable[[Event], None] | None = None) -> None:
        """Record `event` (after `before`, under the lock: e.g. the run log write), then tell every
        subscriber; a broken viewer must never kill the experiment."""
        with self._lock:
            if before is not None:
                before(event)
            self._history.append(event)
            subscribers = list(self._subscribers)
        for cb in subscribers:
            try:
                cb(event)
            except Exception:
                traceback.print_exc()
