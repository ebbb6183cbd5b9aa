"""Transfer: adversarial examples made on one model (the undistilled baseline) replayed against
another. It needs no gradient of the model it is replayed on, so a defence that only hides its
gradients falls to it (C&W section VIII-D: high-confidence CW-L2 examples from an undistilled MNIST
model reach the T = 100 distilled one 100% of the time at kappa ~ 40)."""

from __future__ import annotations

import torch
from torch import nn


def replay(model: nn.Module, x_adv: torch.Tensor, targets: torch.Tensor, made: torch.Tensor,
           batch: int = 1024) -> dict[str, float | int]:
    """Share of the examples that reached their target on the source model (`made`) which `model`
    also classifies as the target; and the same over all attacks."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x_adv[i:i + batch].to(device)).argmax(1).cpu() for i in range(0, len(x_adv), batch)]) \
            if len(x_adv) else torch.zeros(0, dtype=torch.long)
    model.train(was)
    hit = pred == targets
    n_made = int(made.sum())
    return {"transfer_rate": float(hit[made].float().mean()) if n_made else 0.0,
            "success_rate": float((hit & made).float().mean()) if len(made) else 0.0,
            "made": n_made, "attacks": len(made)}
