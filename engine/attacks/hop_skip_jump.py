"""HopSkipJump (Chen, Jordan and Wainwright, IEEE S&P 2020): a decision-based, minimum-L2, targeted
attack, through foolbox 3.3's implementation. It reads only the model's decision (which class), so no
gradient, softmax or logit scale can hide anything from it, and it is unbounded like CW-L2: it starts
from an input the model already classifies as the target and walks the decision boundary towards the
original, so it always reaches the target and its distance is what it could bring down. That makes it
the fair gradient-free comparator of CW-L2 (SimBA, by contrast, moves each pixel by +-epsilon once,
which on an honest model is several times CW-L2's distance).

Starting points: for each input, the held-out image (from `pool`) nearest in L2 that the model
classifies as the target. The budget: `steps` iterations, each estimating the boundary's normal from
`initial_evals x sqrt(step)` (at most `max_evals`) decisions, plus binary searches; queries are counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from engine.attacks.model_state import attack_mode


@dataclass
class HSJAConfig:
    steps: int = 10
    initial_evals: int = 100
    max_evals: int = 1000
    batch_size: int = 64


@dataclass
class HSJAResult:
    x_adv: torch.Tensor
    success: torch.Tensor  # (N,) bool: the model classifies x_adv as the target
    queries: torch.Tensor  # (N,) model evaluations per attack (its share of each batch's)
    failed: int = 0  # attacks whose batch could not run (no starting point, or decisions that changed under it)


class _Counting(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.images = model, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += len(x)
        return self.model(x)


def starting_points(model: nn.Module, x: torch.Tensor, targets: torch.Tensor,
                    pool: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per input, the pool image nearest in L2 that `model` classifies as its target, and whether one exists."""
    device = next(model.parameters()).device
    with torch.no_grad():
        predicted = torch.cat([model(pool[i:i + 1024].to(device)).argmax(1).cpu() for i in range(0, len(pool), 1024)])
    start = x.clone()
    found = torch.zeros(len(x), dtype=torch.bool)
    for i, t in enumerate(targets.tolist()):
        candidates = pool[predicted == t]
        if len(candidates):
            d = (candidates - x[i]).flatten(1).norm(dim=1)
            start[i], found[i] = candidates[int(d.argmin())], True
    return start, found


def hop_skip_jump(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, pool: torch.Tensor,
                  cfg: HSJAConfig, *, on_finished=None, pause_point=None) -> HSJAResult:
    import foolbox as fb  # imported here: only this attack needs it

    out, success = x.clone(), torch.zeros(len(x), dtype=torch.bool)
    queries = torch.zeros(len(x), dtype=torch.long)
    failed = 0
    with attack_mode(model) as net:
        device = next(net.parameters()).device
        counted = _Counting(net)
        start, found = starting_points(net, x, targets, pool)
        fmodel = fb.PyTorchModel(counted.eval(), bounds=(0, 1), device=device)
        attack = fb.attacks.HopSkipJumpAttack(steps=cfg.steps, initial_gradient_eval_steps=cfg.initial_evals,
                                              max_gradient_eval_steps=cfg.max_evals, constraint="l2")
        for lo in range(0, len(x), cfg.batch_size):
            if pause_point is not None:
                pause_point()
            rows = torch.arange(lo, min(lo + cfg.batch_size, len(x)))
            rows = rows[found[rows]]
            failed += int((~found[lo:lo + cfg.batch_size]).sum())
            if not len(rows):
                continue
            before = counted.images
            try:
                adv = attack.run(fmodel, x[rows].to(device), fb.criteria.TargetedMisclassification(
                    targets[rows].to(device)), starting_points=start[rows].to(device))
            except (AssertionError, ValueError):  # a randomized model's decisions changed under the attack
                failed += len(rows)
                continue
            with torch.no_grad():
                reached = net(adv).argmax(1).cpu() == targets[rows]
            out[rows], success[rows] = adv.detach().cpu(), reached
            queries[rows] = (counted.images - before) // len(rows)
            if on_finished is not None:
                on_finished(reached)
    return HSJAResult(out, success, queries, failed)
