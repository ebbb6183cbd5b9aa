"""Success vs budget, from one attack run with no budget at all.

JSMA is greedy and deterministic: with a budget of Upsilon it takes the first floor(n Upsilon / 2)
steps of the unbounded attack's path, so one attack at Upsilon = 100% gives the whole curve (an
attack succeeds within Upsilon when it reached the target in at most that many iterations).
CW-L2 returns the smallest example it found: it succeeds within an L2 bound eps when that example
is at most eps away.
"""

from __future__ import annotations

import math

import torch

UPSILONS = (0.025, 0.05, 0.1, 0.145, 0.2, 0.3, 0.5, 0.75, 1.0)
L2_BOUNDS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0)


def jsma_curve(success: torch.Tensor, iterations: torch.Tensor, n_features: int,
               upsilons: tuple[float, ...] = UPSILONS) -> dict[str, float]:
    """{Upsilon: success rate within it}, from an Upsilon = 1 run's success and iteration counts."""
    out = {}
    for u in upsilons:
        limit = math.floor(n_features * u / 2)
        out[f"{u:g}"] = float((success & (iterations <= limit)).float().mean()) if len(success) else 0.0
    return out


def l2_curve(success: torch.Tensor, l2: torch.Tensor, bounds: tuple[float, ...] = L2_BOUNDS) -> dict[str, float]:
    return {f"{b:g}": float((success & (l2 <= b)).float().mean()) if len(success) else 0.0 for b in bounds}
