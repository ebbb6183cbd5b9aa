"""Carlini & Wagner's margin on the logits, f(x') = max(max_{i != t} Z_i - Z_t + kappa, 0), and the
check that a model hands the attacks logits, not probabilities.

The margin is what makes these attacks see through defensive distillation: it is a difference of
logits, which a T = 100 student scales up by ~T instead of flattening to a saturated softmax.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.errors import AttackConfigError
from engine.model_factory import probability_rows


def margin(logits: torch.Tensor, targets: torch.Tensor, kappa: float = 0.0) -> torch.Tensor:
    """Per row: max(best other logit - target logit + kappa, 0); 0 once the target leads by kappa."""
    real = logits.gather(1, targets.unsqueeze(1)).squeeze(1)
    other = logits.masked_fill(nn.functional.one_hot(targets, logits.shape[1]).bool(), float("-inf")).amax(1)
    return (other - real + kappa).clamp_min(0)


def reaches_target(logits: torch.Tensor, targets: torch.Tensor, kappa: float = 0.0) -> torch.Tensor:
    """The reference's success test: the target wins after its logit is lowered by kappa."""
    z = logits.clone()
    z.scatter_add_(1, targets.unsqueeze(1), torch.full_like(targets, -kappa, dtype=z.dtype).unsqueeze(1))
    return z.argmax(1) == targets


def require_logits(model: nn.Module, x: torch.Tensor, attack: str) -> None:
    """Refuse a model whose output rows are probabilities or log-probabilities (the reference code
    asserts pre-softmax values: through a softmax the margin saturates and the attack weakens)."""
    with torch.no_grad():
        kind = probability_rows(model(x[: min(len(x), 16)]))
    if kind:
        raise AttackConfigError(f"{attack} attacks the logits, but this model's outputs are {kind} (rows sum to 1"
                                f"{' once exponentiated' if kind.startswith('log') else ''}); hand it the network "
                                "without its (log-)softmax")
