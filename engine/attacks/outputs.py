"""What JSMA attacks: the deployed softmax (JSMA-F), the logits (JSMA-Z), or softmax(z/T) (Carlini's fix)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from engine.deployment import DEPLOYED

OUTPUTS = ("softmax", "logits", "softmax_T")


@dataclass
class AttackedOutput:
    """F(x) for the saliency map, plus the logits that decide the predicted class."""

    model: nn.Module
    name: str
    temperature: float  # the temperature inside F: 1 for softmax, training T for softmax_T, None-like for logits

    @property
    def sums_to_one(self) -> bool:
        # sum_j F_j = 1, so d(sum_{j != t} F_j)/dx = -dF_t/dx exactly: one backward pass instead of two.
        return self.name != "logits"

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        if self.name == "logits":
            return logits, logits
        return torch.softmax(logits / self.temperature, dim=1), logits


def attacked_output(model: nn.Module, name: str, training_temperature: float) -> AttackedOutput:
    if name not in OUTPUTS:
        raise ValueError(f"attacked output must be one of {OUTPUTS}, got {name!r}")
    t = training_temperature if name == "softmax_T" else DEPLOYED
    return AttackedOutput(model, name, t)
