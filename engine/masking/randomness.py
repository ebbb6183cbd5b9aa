"""Randomized decisions: does the model's randomness change what an attack sees?

Logits that differ between two identical calls are not yet a defence: noise of 1e-6 at the input
changes every logit's last bits and no decision. Randomness masks gradients when it moves decisions,
so the unit is the decision: an input counts when, over `calls` identical calls, the model's class
for the input itself, or whether its white-box adversarial example reaches its target, is not the
same every time (Athalye et al. 2018, stochastic gradients; EOT is the remedy). The spread of the
logits is kept beside it, for the report."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from engine.metrics import eval_mode

CALLS = 8


def randomized_decisions(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor | None = None,
                         targets: torch.Tensor | None = None, reached: torch.Tensor | None = None,
                         calls: int = CALLS, device: torch.device | None = None) -> dict[str, Any]:
    """Per input: its predicted class over `calls` calls, and (where `reached`) whether x_adv reaches its
    target over the same calls; an input is randomized when either is not constant. In eval mode."""
    device = device or next(model.parameters()).device
    with eval_mode(model), torch.no_grad():
        logits = torch.stack([model(x.to(device)).float().cpu() for _ in range(calls)])
        classes = logits.argmax(2)
        changed = (classes != classes[0]).any(0)
        if x_adv is not None and targets is not None and reached is not None and bool(reached.any()):
            rows = reached.nonzero().flatten()
            hit = torch.stack([model(x_adv[rows].to(device)).argmax(1).cpu() == targets[rows] for _ in range(calls)])
            changed[rows] |= (hit != hit[0]).any(0)
    spread = (logits - logits.mean(0)).abs().amax((0, 2))
    return {"n_inputs": len(x), "randomized_inputs": int(changed.sum()), "calls": calls,
            "max_logit_spread": float(spread.max()) if len(x) else 0.0,
            "inputs_with_different_logits": int((spread > 0).sum())}
