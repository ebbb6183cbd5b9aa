"""The paper's measurements: success_rate, distortion, success matrix, gradient amplitude, rho_adv."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

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


def gradient_amplitude(model: nn.Module, x: torch.Tensor, temperature: float = 1.0,
                       device: torch.device | None = None) -> dict[str, Any]:
    """Mean |dF_j/dx_i| per input over all classes j and features i, F = softmax(z/T) (deployed: T = 1).

    The paper's "gradients reduced by 10^30": reported as an order-of-magnitude histogram;
    exact zeros (float32 underflow of a saturated softmax) are counted in their own bin. Also the
    inputs whose logits' gradient is exactly zero (shattered gradients), and those whose logits differ
    between two identical calls (a randomized model: AutoAttack's flag).
    The model is measured in eval mode and left in the mode it was found in.
    """
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        x = x.to(device).detach().requires_grad_(True)
        # float32, as deployed: a saturated softmax underflows to exact zeros, which is the point.
        logits = model(x).float()
        with torch.no_grad():
            again = model(x.detach()).float()
        differing = int((~(logits.detach() == again).all(1)).sum())
        probs = torch.softmax(logits / temperature, dim=1)
        amp = torch.zeros(len(x), dtype=torch.float64, device=device)
        logit_amp = torch.zeros(len(x), dtype=torch.float64, device=device)
        for j in range(probs.shape[1]):
            (g,) = torch.autograd.grad(probs[:, j].sum(), x, retain_graph=True)
            amp += g.double().abs().flatten(1).mean(1)
        for j in range(logits.shape[1]):  # the logits' own gradient: zero too only when the input path is cut
            (g,) = torch.autograd.grad(logits[:, j].sum(), x, retain_graph=j + 1 < logits.shape[1])
            logit_amp += g.double().abs().flatten(1).mean(1)
    finally:
        model.train(was_training)
    amp = (amp / probs.shape[1]).cpu()
    zeros = int((amp == 0).sum())
    logs = torch.log10(amp[amp > 0])
    bins: dict[str, int] = {"0": zeros}
    for e in logs.floor().long().tolist():
        key = f"1e{e}"
        bins[key] = bins.get(key, 0) + 1
    ordered = dict(sorted(bins.items(), key=lambda kv: -math.inf if kv[0] == "0" else int(kv[0][2:])))
    return {"mean": float(amp.mean()), "median": float(amp.median()), "zero_share": zeros / len(amp),
            "zero_inputs": zeros, "zero_logit_inputs": int((logit_amp == 0).sum()), "randomized_inputs": differing,
            "histogram_log10": ordered, "n_inputs": len(amp), "temperature": temperature,
            "values": amp.tolist()}
