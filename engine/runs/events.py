"""Event records: small, JSON-serialisable, with a type, a monotonically increasing seq and a time.

The run directory's events.jsonl holds exactly the stream a dashboard sees, so a dashboard can
be rebuilt from a run directory alone.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class EventType(str, Enum):
    RUN_STARTED = "run_started"
    RUN_RESUMED = "run_resumed"
    PROBES = "probes"  # the held-out inputs the dashboard's confidence panel shows
    PHASE_STARTED = "phase_started"
    PHASE_FINISHED = "phase_finished"
    BATCH = "batch"
    EPOCH = "epoch"
    CHECKPOINT = "checkpoint"
    SOFT_LABELS = "soft_labels"
    TEMPERATURE_CHANGED = "temperature_changed"
    PAUSED = "paused"
    RESUMED = "resumed"
    ATTACK_STARTED = "attack_started"
    ATTACK_PROGRESS = "attack_progress"
    ATTACK_FINISHED = "attack_finished"
    SUMMARY = "summary"
    STOPPED = "stopped"
    FINISHED = "finished"
    FAILED = "failed"
    SWEEP_PROGRESS = "sweep_progress"  # a sweep's own log: which runs are pending, running, done, failed


@dataclass(frozen=True)
class Event:
    type: EventType
    seq: int
    time: float
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        d = asdict(self)
        d["type"] = self.type.value
        return json.dumps(d, separators=(",", ":"), allow_nan=False)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Event:
        return Event(EventType(d["type"]), int(d["seq"]), float(d["time"]), dict(d.get("data", {})))


def make_event(type_: EventType, seq: int, **data: Any) -> Event:
    return Event(type_, seq, time.time(), data)
