"""The paper's measurements of a JSMA result: success rate, distortion (features changed), how
attacks ended, the source x target success matrix, and rho_adv (Papernot et al. section V)."""

from __future__ import annotations

from typing import Any

import torch

from engine.attacks.jsma import ENDED, JSMAResult


def success_rate(result: JSMAResult) -> float:
    return float(result.success.float().mean()) if len(result.success) else 0.0


def mean_features_changed(result: JSMAResult) -> float | None:
    """Mean share of input values changed, over successful attacks only (the paper's distortion)."""
    if not bool(result.success.any()):
        return None
    return float(result.features_changed[result.success].float().mean()) / result.n_features


def ended_counts(result: JSMAResult) -> dict[str, int]:
    return {name: int((result.ended == i).sum()) for i, name in enumerate(ENDED)}


def success_matrix(result: JSMAResult, labels: torch.Tensor, targets: torch.Tensor,
                   num_classes: int = 10) -> dict[str, list[list[int]]]:
    """Per source class x target class: attempts and successes."""
    attempts = torch.zeros(num_classes, num_classes, dtype=torch.long)
    wins = torch.zeros_like(attempts)
    attempts.index_put_((labels, targets), torch.ones_like(labels), accumulate=True)
    wins.index_put_((labels, targets), result.success.long(), accumulate=True)
    return {"attempts": attempts.tolist(), "successes": wins.tolist()}


def rho_adv(result: JSMAResult, sample_index: torch.Tensor) -> dict[str, Any]:
    """Robustness: mean over inputs of the smallest share of features a successful attack changed.

    Only targeted attacks are run, so the minimum is over the 9 targets. Inputs no target reached
    are counted at the budget's share: the figure is then a lower bound, and says so.
    """
    budget_share = 2 * result.max_iterations / result.n_features
    shares = []
    unreached = 0
    for s in torch.unique(sample_index):
        mask = (sample_index == s) & result.success
        if mask.any():
            shares.append(float(result.features_changed[mask].min()) / result.n_features)
        else:
            unreached += 1
            shares.append(budget_share)
    return {"rho_adv": sum(shares) / len(shares) if shares else None,
            "inputs": len(shares), "inputs_no_target_reached": unreached,
            "is_lower_bound": unreached > 0}
