"""A read-only Session over a run directory: replays events.jsonl, then follows it as it grows.

Lets the dashboard open a run that `defdistill-engine` is writing (or has finished) with no
engine in this process; commands are refused with a one-line message.
"""

from __future__ import annotations

import threading
from pathlib import Path

from engine.errors import UserError
from engine.presets import preset_from_toml
from engine.record.events import END_STATES, Event, EventType, Failed, ReadReport, parse_lines
from engine.record.rundir import RunDir
from engine.sessions.session import EventFanout, Session
from engine.steps.request import AttackRequest


class ReadOnlySession(UserError):
    pass


class ReplaySession(EventFanout, Session):
    def __init__(self, run_dir: str | Path, *, follow: bool = True, poll: float = 0.25) -> None:
        EventFanout.__init__(self)
        self.rundir = RunDir.open(run_dir)
        self.run_dir = self.rundir.path
        self.preset = preset_from_toml(self.rundir.read_preset_toml(), str(self.run_dir / "preset.toml"))
        self._follow = follow
        self._poll = poll
        self._stop = threading.Event()
        self.read_report = ReadReport()  # lines of events.jsonl this session could not use
        self._thread = threading.Thread(target=self._tail, name="defdistill-replay", daemon=True)

    def _tail(self) -> None:
        offset = 0
        path = self.rundir.events_path
        while not self._stop.is_set():
            new: list[Event] = []
            if path.exists():
                with open(path, "rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                complete = chunk[: chunk.rfind(b"\n") + 1]  # a torn last line waits for the next poll
                offset += len(complete)
                new = parse_lines(complete.split(b"\n"), self.read_report)
            for e in new:
                self._publish(e)
            if not self._follow:
                return
            self._stop.wait(self._poll)

    # -- Session ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def _refuse(self, what: str) -> None:
        raise ReadOnlySession(f"cannot {what}: this dashboard only watches {self.run_dir} (read-only); "
                              "steer a run from the dashboard that started it")

    def pause(self) -> None:
        self._refuse("pause")

    def resume(self) -> None:
        self._refuse("resume")

    def set_temperature(self, temperature: float) -> float:
        self._refuse("change the temperature")
        return temperature

    def attack(self, request: AttackRequest) -> None:
        self._refuse(f"attack here; run `defdistill-engine attack {self.run_dir}`")

    def stop(self) -> None:
        self._refuse("stop the run")

    def close(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def state(self) -> str:
        with self._lock:
            for e in reversed(self._history):
                if e.type in END_STATES:
                    return END_STATES[e.type]
                if e.type == EventType.PAUSED:
                    return "paused"
                if e.type in (EventType.BATCH, EventType.RESUMED, EventType.RUN_STARTED, EventType.RUN_RESUMED):
                    return "running"
        return "starting"

    @property
    def error(self) -> str | None:
        for e in reversed(self.history()):
            if isinstance(e.data, Failed):
                return e.data.message
        return None

    read_only = True

    def engine_pid(self) -> int | None:
        from engine.sessions.channel import engine_pid

        return engine_pid(self.run_dir)

    def problems(self) -> list[str]:
        out = []
        if not self.rundir.events_path.exists():
            out.append(f"{self.rundir.events_path} does not exist: nothing to show yet "
                       "(no engine has written this run)")
        if self.read_report.skipped:
            out.append(self.read_report.line(self.rundir.events_path))
        return out
