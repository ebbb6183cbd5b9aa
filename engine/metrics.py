"""Measurements of a trained model that no attack needs: the amplitude of its input gradients, and
where they are non-zero at all (gradient support, dead units)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode for a measurement (dropout off), then back in the mode it was found in, each
    submodule in its own (a model with a frozen, eval-mode part keeps it so)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, was_training in modes:
            m.training = was_training


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
    with eval_mode(model):
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


def gradient_support(model: nn.Module, x: torch.Tensor, device: torch.device | None = None) -> dict[str, Any]:
    """Where a model's input gradient lives: the share of input features (pixels x channels) on which
    the gradient of the predicted logit is non-zero, per input and averaged, and per ReLU layer the
    share of units that are zero on every one of the inputs (dead units; a conv channel counts as one
    unit). A gradient on a few percent of the pixels stops every white-box attack for a reason that
    has nothing to do with a saturated softmax, so the two are reported side by side.

    ReLUs are found as nn.ReLU modules: a network that calls relu as a function reports no layers.
    Measured in eval mode; the model is left in the mode it was found in."""
    device = device or next(model.parameters()).device
    seen: dict[str, torch.Tensor] = {}  # per ReLU module: the largest activation of each unit so far
    hooks = []

    def watch(name: str):
        def hook(_module: nn.Module, _inputs: Any, out: torch.Tensor) -> None:
            units = out.detach().transpose(0, 1).flatten(1).amax(1)  # per unit (channel), over inputs/positions
            seen[name] = units if name not in seen else torch.maximum(seen[name], units)
        return hook

    for name, module in model.named_modules():
        if isinstance(module, nn.ReLU):
            hooks.append(module.register_forward_hook(watch(name)))
    try:
        with eval_mode(model):
            x = x.to(device).detach().requires_grad_(True)
            logits = model(x).float()
            predicted = logits.gather(1, logits.argmax(1, keepdim=True)).sum()
            (g,) = torch.autograd.grad(predicted, x)  # inputs are independent in eval mode: one pass serves all
    finally:
        for h in hooks:
            h.remove()
    per_input = (g.flatten(1) != 0).double().mean(1).cpu()
    dead = {name: float((units <= 0).double().mean()) for name, units in seen.items()}
    n_units = {name: len(units) for name, units in seen.items()}
    total = sum(n_units.values())
    return {"pixel_share": float(per_input.mean()), "pixel_share_min": float(per_input.min()),
            "n_inputs": len(per_input), "dead_units": dead, "units": n_units,
            "dead_unit_share": (sum(dead[k] * n_units[k] for k in dead) / total) if total else None}
