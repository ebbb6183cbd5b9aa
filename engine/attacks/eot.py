"""Expectation over transformation (Athalye et al. 2018): a randomized model attacked through the mean of
several calls. Each call draws its own randomness (input noise, dropout at inference, a random
transform); the mean of the logits, and so of their gradients, is what an attacker can rely on, and
a gradient attack on the wrapper optimises it. The remedy for "randomized outputs"."""

from __future__ import annotations

import torch
from torch import nn

CALLS = 8


class ExpectationOverTransformation(nn.Module):
    def __init__(self, model: nn.Module, calls: int = CALLS) -> None:
        super().__init__()
        self.model, self.calls = model, calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # separate calls, not one batch of copies: a model may draw its randomness once per call
        return torch.stack([self.model(x) for _ in range(self.calls)]).mean(0)
