"""Transfer: adversarial examples made on one model (the undistilled baseline) replayed against
another. It needs no gradient of the model it is replayed on, so a defence that only hides its
gradients falls to it (C&W section VIII-D: high-confidence CW-L2 examples from an undistilled MNIST
model reach the T = 100 distilled one 100% of the time at kappa ~ 40). Also the per-input L2 the
checks pair with CW-L2's minimal one."""

from __future__ import annotations

import torch
from torch import nn

from engine.training import predict_logits


def hits(model: nn.Module, x_adv: torch.Tensor, targets: torch.Tensor, made: torch.Tensor) -> torch.Tensor:
    """Per example: it reached its target on the model that made it (`made`) and `model`, in eval mode,
    classifies it as that target too."""
    if not len(x_adv):
        return torch.zeros(0, dtype=torch.bool)
    device = next(model.parameters()).device
    return (predict_logits(model, x_adv, device).argmax(1) == targets) & made.bool()


def per_input_l2(x: torch.Tensor, x_adv: torch.Tensor, hit: torch.Tensor) -> list[float | None]:
    """L2 of each example that reaches its target (None where it does not): the lists the checks pair."""
    l2 = (x_adv - x).flatten(1).double().norm(dim=1)
    return [float(v) if h else None for v, h in zip(l2.tolist(), hit.tolist(), strict=True)]
