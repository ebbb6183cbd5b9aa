"""Defensive distillation: the teacher's softmax(z/T) on the training set becomes the student's labels."""

from __future__ import annotations

import torch
from torch import nn

from engine.temperature import softmax_at
from engine.training import predict_logits


def soft_labels(teacher: nn.Module, x_train: torch.Tensor, temperature: float,
                device: torch.device) -> torch.Tensor:
    """Step 2 of the paper: the teacher's softmax at the training temperature, per training input."""
    return softmax_at(predict_logits(teacher, x_train, device).double(), temperature).float()


def mean_abs_logit(logits: torch.Tensor) -> float:
    """Mean |z| over held-out inputs and classes: ~T times larger after distillation at T."""
    return logits.abs().mean().item()


def saturated_share(logits: torch.Tensor) -> float:
    """Share of inputs whose deployed (T = 1) float32 softmax puts exactly 1.0 on one class."""
    return (torch.softmax(logits.float(), dim=1).max(dim=1).values == 1.0).float().mean().item()
