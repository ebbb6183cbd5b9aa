"""Gradient honesty: does a model's backward pass describe its forward function?

Every gradient attack trusts autograd. A defence can break that trust without zeroing anything: a
straight-through or custom backward, a part of the input detached from the graph, a quantiser whose
backward is the identity, a discontinuous activation. The gradient is then non-zero, deterministic
and wrong, and a gradient attack fails for a reason that has nothing to do with robustness (Athalye
et al. 2018, "obfuscated gradients"; Tramer et al. 2020). The principle that covers the whole class:
compare the backward with the function it claims to differentiate.

For each input, the logits' directional derivative along a few random unit directions v, from
autograd (J v, every logit), beside central finite differences of the forward function itself,
(f(x + h v) - f(x - h v)) / 2h, at several step sizes h. A piecewise-linear net (ReLU, max-pool)
agrees to float32 rounding at the step sizes that cross no kink; a smooth one to O(h^2). An input's
disagreement is the relative error ||autograd - finite differences|| / max(||autograd||, ||finite
differences||) over all its directions and logits, at the step size that agrees best: a kink crossed
at one step size, or rounding at another, does not count against an honest model, while a backward
that describes another function disagrees at every step size. The points are moved into the interior
of the [0, 1] box first (x -> margin + (1 - 2 margin) x) so that no step leaves it: a model that clips
its input is not differentiable on the box's faces, where most background pixels of MNIST lie, and an
attack in tanh space never evaluates them either.

What it does not see: a backward that is *exact* for a function whose gradient is useless (a saturated
softmax, a quantised input with a zero derivative) is honest; the vanishing-gradient checks cover those.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from engine.metrics import eval_mode

# finite-difference step sizes (on the [0, 1] scale, along unit-L2 directions); float64 affords the small
# ones (fewer kinks crossed), float32 rounding makes them noise
STEPS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
FLOAT32_STEPS = 3
DIRECTIONS = 4  # random directions per input
# an input's backward disagrees with its forward above this relative error at the attack's step: on the digits
# baseline, the x1000, x0.05 and T = 100 models the largest error over 60 inputs is 0.04-0.06 (median 0.005-0.01);
# a straight-through, half-foreign or partial backward, k-WTA and quantisation give 0.5-1.0
TOLERANCE = 0.25
INTERIOR = 0.02  # the points are moved this far into the box: every step stays inside it
# and jittered by up to this much: flat regions of an image (equal pixels) put max-pool windows on exact
# ties, a kink the point sits on, where no derivative describes every direction; a generic point nearby
# lies inside one linear piece, as an attack's iterates do after their first step
JITTER = 1e-3


def _unit_directions(shape: torch.Size, n_directions: int, seed: int) -> torch.Tensor:
    """(directions, N, ...) Gaussian directions, each of unit L2 norm per input (seeded: reproducible)."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn((n_directions, *shape), generator=gen)
    return v / v.flatten(2).norm(dim=2).view(n_directions, shape[0], *([1] * (len(shape) - 1)))


def _in_double(model: nn.Module, probe: torch.Tensor) -> tuple[nn.Module, torch.dtype]:
    """A float64 copy of the model when it has one: finite differences in float32 carry rounding of
    ~1e-7 x |logit| / h, which at h = 1e-3 is a few percent of an honest derivative; in float64 they
    agree to ~1e-9 at the same steps. A model that cannot be copied or run in float64 is measured as
    it is, in float32."""
    try:
        twin = copy.deepcopy(model).double()
        with torch.no_grad():
            out = twin.eval()(probe.double())
        if out.dtype != torch.float64:
            raise TypeError("the model does not compute in float64")
        return twin, torch.float64
    except Exception:  # any failure of a foreign model in float64: measure it as it is
        return model, torch.float32


def gradient_honesty(model: nn.Module, x: torch.Tensor, *, directions: int = DIRECTIONS,
                     steps: tuple[float, ...] = STEPS, seed: int = 0,
                     device: torch.device | None = None) -> dict[str, Any]:
    """Per input, the relative disagreement between the logits' autograd directional derivatives and
    central finite differences of the forward function at each step size; the inputs that disagree at
    the attack's scale (the largest step), and those that disagree at every step. Measured in eval
    mode; the model is left in the mode it was found in, its weights untouched."""
    device = device or next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    jitter = JITTER * (2 * torch.rand(x.shape, generator=gen) - 1)
    interior = (INTERIOR + (1 - 2 * INTERIOR) * x.detach().float().cpu() + jitter).to(device)
    v = _unit_directions(interior.shape, directions, seed + 1).to(device)
    # a step may not leave the box: the largest h times the largest |v_i| stays within INTERIOR
    scale = min(1.0, 0.5 * INTERIOR / (max(steps) * float(v.abs().max())))
    twin, dtype = _in_double(model, interior[:1])
    hs = [h * scale for h in (steps if dtype == torch.float64 else steps[:FLOAT32_STEPS])]
    interior, v = interior.to(dtype), v.to(dtype)
    with eval_mode(twin):
        xg = interior.clone().requires_grad_(True)
        logits = twin(xg)
        n, classes = logits.shape
        autograd = torch.zeros(n, directions, classes, dtype=torch.float64, device=device)
        for j in range(classes):
            (g,) = torch.autograd.grad(logits[:, j].sum(), xg, retain_graph=j + 1 < classes, allow_unused=True)
            if g is not None:  # None: the logit does not depend on the input at all, its derivative is 0
                autograd[:, :, j] = (g.double().unsqueeze(0) * v.double()).flatten(2).sum(2).T
        errors = torch.zeros(len(hs), n, dtype=torch.float64)
        with torch.no_grad():
            for k, h in enumerate(hs):
                plus = torch.cat([interior + h * v[d] for d in range(directions)])
                minus = torch.cat([interior - h * v[d] for d in range(directions)])
                f = twin(torch.cat([plus, minus])).double()
                fd = ((f[: n * directions] - f[n * directions:]) / (2 * h)).view(directions, n, classes)
                fd = fd.transpose(0, 1)
                diff = (autograd - fd).flatten(1).norm(dim=1)
                size = torch.maximum(autograd.flatten(1).norm(dim=1), fd.flatten(1).norm(dim=1))
                # both exactly zero (a quantised input away from its steps) is agreement, not 0/0
                errors[k] = torch.where(size > 0, diff / size.clamp_min(1e-300), torch.zeros_like(diff)).cpu()
    at_attack_scale = errors[0] > TOLERANCE
    everywhere = errors.min(0).values > TOLERANCE
    return {"n_inputs": n, "disagreeing_inputs": int(at_attack_scale.sum()),
            "disagreeing_at_every_step": int(everywhere.sum()), "tolerance": TOLERANCE,
            "attack_step": hs[0], "steps": hs, "precision": "float64" if dtype == torch.float64 else "float32",
            "directions": directions,
            "median_error_by_step": {f"{h:.0e}": float(errors[k].median()) for k, h in enumerate(hs)},
            "errors": [float(e) for e in errors[0].tolist()]}
