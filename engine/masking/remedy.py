"""The remedies: the attack that matches each masked gradient, run at CW-L2's own budget, so a verdict of
"masked" also says how robust the model really is.

- a saturated or vanishing deployed softmax: attack the logits (CW-L2 on the logits, which a run
  measures anyway: nothing more to run here);
- a backward that lies or is zero (custom, straight-through, detached, quantised, discontinuous):
  CW-L2 on gradients estimated from the forward function alone (attacks/estimated_gradient.py), which
  no backward can fool;
- randomized decisions: CW-L2 on the mean of several calls (EOT, attacks/eot.py).
The estimated-gradient attack is also a comparator in its own right (attack.checks "estimated")."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from engine.attacks.cw_l2 import CWL2Config, cw_l2
from engine.attacks.cw_result import CWResult, OnFinished
from engine.attacks.eot import CALLS, ExpectationOverTransformation
from engine.attacks.estimated_gradient import COARSE, SAMPLES, SIGMA, EstimatedGradient

ESTIMATED_CW = "CW-L2 on estimated gradients"
EOT_CW = "CW-L2 with EOT"


@dataclass(frozen=True)
class RemedyConfig:
    samples: int = SAMPLES  # antithetic pairs of forward passes per gradient estimate
    sigma: float = SIGMA  # the estimate's smoothing scale
    coarse: int = COARSE  # an image's directions drawn on a grid this many times coarser
    eot_calls: int = CALLS  # calls averaged per EOT step
    seed: int = 0


def remedy_model(model: nn.Module, attack: str, cfg: RemedyConfig) -> nn.Module:
    if attack == ESTIMATED_CW:
        return EstimatedGradient(model, cfg.samples, cfg.sigma, cfg.seed, cfg.coarse)
    if attack == EOT_CW:
        return ExpectationOverTransformation(model, cfg.eot_calls)
    raise ValueError(f"no remedy attack named {attack!r}")


def run_remedy(model: nn.Module, attack: str, x: torch.Tensor, targets: torch.Tensor, cw: CWL2Config,
               cfg: RemedyConfig, *, on_finished: OnFinished | None = None, pause_point=None) -> CWResult:
    """CW-L2 at `cw`'s budget (without its escalations: each of its steps costs 2 x samples forward
    passes, or eot_calls) on the model seen through the remedy. Success is checked on the model itself."""
    result = cw_l2(remedy_model(model, attack, cfg), x, targets, replace(cw, escalations=0),
                   on_finished=on_finished, pause_point=pause_point)
    device = next(model.parameters()).device
    with torch.no_grad():  # reached on the model as deployed (one call), not on the remedy's view of it
        was = model.training
        model.eval()
        pred = torch.cat([model(result.x_adv[i:i + 1024].to(device)).argmax(1).cpu()
                          for i in range(0, len(x), 1024)]) if len(x) else torch.zeros(0, dtype=torch.long)
        model.train(was)
    result.success &= pred == targets
    return result
