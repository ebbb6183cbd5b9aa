"""A model whose backward pass is estimated from its forward function alone (no autograd through it):
the remedy for a backward that lies, and a comparator that no backward can fool.

Wrapping a model in `EstimatedGradient` leaves its outputs as they are and replaces its vector-Jacobian
product by a finite-difference estimate on random directions (NES, Ilyas et al. 2018; the gradient-free
half of Athalye et al.'s BPDA argument): for the incoming gradient g of the logits,

    g^T J  ~  1/q sum_k [ g . (f(x + s u_k) - f(x - s u_k)) / 2s ] u_k,   u_k ~ N(0, I),

antithetic pairs, q directions per input, one batch of 2q forward passes per input. E[u u^T] = I, so
the estimate is unbiased for the gradient of f smoothed by N(0, s^2 I): at s above a discontinuity's
scale (k-winners-take-all, input quantisation) it follows the smoothed function, which is what an
attacker can use. Any gradient attack (CW-L2, JSMA, PGD) runs on the wrapper unchanged. Seeded: the
same call draws the same directions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

SAMPLES = 8  # antithetic pairs per input and gradient (on the digits baseline, 6 x 500 iterations: 19/20 reached)
SIGMA = 0.01  # the smoothing scale, on the [0, 1] pixel scale
CHUNK = 8192  # images per forward pass of the estimate
COARSE = 2  # directions of an image drawn on a grid this many times coarser


class _Estimate(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, owner: EstimatedGradient) -> torch.Tensor:  # type: ignore[override]
        ctx.owner = owner
        ctx.save_for_backward(x)
        with torch.no_grad():
            return owner.model(x)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return ctx.owner.vjp(x, g), None


class EstimatedGradient(nn.Module):
    """`model` with its input gradient estimated from `samples` antithetic pairs of forward passes at
    scale `sigma`. Counts the forward passes it spends (`queries`)."""

    def __init__(self, model: nn.Module, samples: int = SAMPLES, sigma: float = SIGMA, seed: int = 0,
                 coarse: int = COARSE) -> None:
        super().__init__()
        self.model, self.samples, self.sigma, self.coarse = model, samples, sigma, coarse
        self.generator = torch.Generator().manual_seed(seed)
        self.queries = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.queries += len(x)
        if not x.requires_grad:
            with torch.no_grad():
                return self.model(x)
        return _Estimate.apply(x, self)

    def _directions(self, x: torch.Tensor) -> torch.Tensor:
        """(q, N, ...) Gaussian directions; for images, drawn on a grid `coarse` times coarser and
        upsampled (Tu et al. 2019, AutoZOOM): the variance of the estimate grows with the dimension it is
        drawn in, so a 28x28 image needs 4x fewer queries at the same precision for its low frequencies."""
        q = self.samples
        if x.dim() == 4 and self.coarse > 1 and min(x.shape[-2:]) >= 8 * self.coarse:
            h, w = x.shape[-2:]
            small = torch.randn((q * len(x), x.shape[1], -(-h // self.coarse), -(-w // self.coarse)),
                                generator=self.generator)
            u = nn.functional.interpolate(small, scale_factor=self.coarse, mode="nearest")[..., :h, :w]
            u = u / self.coarse  # E[u u^T] = the projector onto block-constant images: unbiased there
            return u.view(q, *x.shape).to(device=x.device, dtype=x.dtype)
        return torch.randn((q, *x.shape), generator=self.generator).to(device=x.device, dtype=x.dtype)

    @torch.no_grad()
    def vjp(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        q, s = self.samples, self.sigma
        u = self._directions(x)
        points = torch.cat([x.unsqueeze(0) + s * u, x.unsqueeze(0) - s * u]).flatten(0, 1)
        out = torch.cat([self.model(points[i:i + CHUNK]) for i in range(0, len(points), CHUNK)]).to(g.dtype)
        self.queries += len(points)
        out = out.view(2, q, *g.shape)
        slope = ((out[0] - out[1]) * g.unsqueeze(0)).sum(-1) / (2 * s)  # (q, N): g . directional derivative
        return (slope.view(q, len(x), *([1] * (x.dim() - 1))).to(x.dtype) * u).mean(0)
