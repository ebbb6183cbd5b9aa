"""Where the temperature is applied: softmax(z/T), the training loss at T, the deployed output."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def softmax_at(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(z/T)_i = exp(z_i/T) / sum_j exp(z_j/T)."""
    return F.softmax(logits / temperature, dim=-1)


def loss_scale_factor(temperature: float | torch.Tensor, loss_scale: str) -> float | torch.Tensor:
    """d loss/d z = (p - y)/T: scaling by T restores T = 1 sized gradients (T^2: Hinton et al.).

    `temperature` may be a 0-d tensor (the training step holds T on the device, so a change from
    the dashboard needs no recompilation or recapture of a compiled step)."""
    if loss_scale == "none":
        return 1.0
    if loss_scale == "T":
        return temperature
    if loss_scale == "T2":
        return temperature * temperature
    raise ValueError(f"loss_scale must be none, T or T2, got {loss_scale!r}")


def loss_at_temperature(logits: torch.Tensor, targets: torch.Tensor, temperature: float | torch.Tensor,
                        loss_scale: str = "T") -> torch.Tensor:
    """Cross-entropy of softmax(z/T) against hard labels (int64) or soft labels (rows of probabilities)."""
    log_p = F.log_softmax(logits / temperature, dim=-1)
    if targets.dtype == torch.int64:
        loss = F.nll_loss(log_p, targets)
    else:
        loss = -(targets * log_p).sum(dim=-1).mean()
    return loss * loss_scale_factor(temperature, loss_scale)
