"""Commands from any thread to the engine thread: pause, resume, temperature, stop.

The engine polls at batch (and attack-iteration) boundaries, so a command takes effect at
the next batch and never tears a step in half.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from engine.deployment import check_temperature


class StopRequested(Exception):
    """Raised inside the engine thread at the next pause point after stop()."""


class Control:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._running.set()
        self._stop = threading.Event()
        self._pending_temperature: float | None = None

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # a paused engine must wake up to stop

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def set_temperature(self, value: float) -> float:
        t = check_temperature(value)
        with self._lock:
            self._pending_temperature = t
        return t

    def take_temperature(self) -> float | None:
        with self._lock:
            t, self._pending_temperature = self._pending_temperature, None
        return t

    def pause_point(self, on_pause: Callable[[], None], on_resume: Callable[[], None]) -> None:
        """Block while paused; raise StopRequested once stop() was called."""
        if self._stop.is_set():
            raise StopRequested
        if not self._running.is_set():
            on_pause()
            self._running.wait()
            if self._stop.is_set():
                raise StopRequested
            on_resume()
