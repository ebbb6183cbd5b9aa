"""Measurements of a trained model that no attack needs: the amplitude of its input gradients."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


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
