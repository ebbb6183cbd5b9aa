"""The typed contract between a run and its attack phases: what a phase may read and call.

`Experiment` owns this state; the phases (attack_phase, cw_phase, verdict_phase) see it only through
`RunContext`, so a phase that reaches for anything else fails the type check instead of growing the
blackboard, and `TrainedModel` is the one place a model's attack temperature comes from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from engine.data import DatasetSplit
from engine.presets import Preset
from engine.record.events import Event, Payload
from engine.record.rundir import RunDir


@dataclass(frozen=True)
class TrainedModel:
    """A trained model as the attacks see it: its name, its network (in eval mode) and the T it is
    attacked at (JSMA on softmax(z/T), the checks' training-T outputs) — the T its checkpoint records."""

    name: str
    network: nn.Module
    temperature: float


class RunContext(Protocol):
    preset: Preset
    data: DatasetSplit
    rundir: RunDir
    device: torch.device
    emit: Callable[[Payload], Event]
    models: dict[str, nn.Module]
    phase: str | None  # what the run is doing now, for Stopped/Paused events

    def trained(self, name: str) -> TrainedModel:
        """The trained model `name`, with the temperature it is attacked at."""
        ...

    def attack_temperature(self, model: str) -> float:
        """The T `model` is attacked at: the T its checkpoint says it was trained at."""
        ...

    def transfer_source(self, name: str) -> tuple[str, nn.Module] | None:
        """The model whose examples are replayed on `name`, and its label (trains a surrogate if need be)."""
        ...

    def pause_point(self) -> None:
        """Block while the run is paused; raise when it is stopped."""
        ...
