"""Where the temperature is applied: softmax(z/T), the training loss at T, the deployed output."""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEPLOYED_TEMPERATURE = 1.0


def softmax_at(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(z/T)_i = exp(z_i/T) / sum_j exp(z_j/T)."""
    return F.softmax(logits / temperature, dim=-1)


def loss_scale_factor(temperature: float, loss_scale: str) -> float:
    """d loss/d z = (p - y)/T: scaling by T restores T = 1 sized gradients (T^2: Hinton et al.)."""
    return {"none": 1.0, "T": temperature, "T2": temperature * temperature}[loss_scale]


def loss_at_temperature(logits: torch.Tensor, targets: torch.Tensor, temperature: float,
                        loss_scale: str = "T") -> torch.Tensor:
    """Cross-entropy of softmax(z/T) against hard labels (int64) or soft labels (rows of probabilities)."""
    log_p = F.log_softmax(logits / temperature, dim=-1)
    if targets.dtype == torch.int64:
        loss = F.nll_loss(log_p, targets)
    else:
        loss = -(targets * log_p).sum(dim=-1).mean()
    return loss * loss_scale_factor(temperature, loss_scale)
