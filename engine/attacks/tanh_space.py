"""Carlini & Wagner's change of variables: x = (tanh(w) + 1) / 2 keeps every pixel inside [0, 1]
for any w, so the attacks optimise w with plain Adam and need no clipping.

The reference code works on [-0.5, 0.5] with x = tanh(w) / 2 and w = arctanh(x * 1.999999); the
same map shifted to [0, 1] is w = arctanh((2x - 1) * 0.999999). The factor keeps arctanh finite
at the box's edges; distances are measured against the original x itself.
"""

from __future__ import annotations

import torch

SHRINK = 0.999999  # the reference's 1.999999 / 2


def to_tanh_space(x: torch.Tensor) -> torch.Tensor:
    return torch.atanh((2 * x - 1) * SHRINK)


def from_tanh_space(w: torch.Tensor) -> torch.Tensor:
    return (torch.tanh(w) + 1) / 2
