"""Adam over a batch of independent attacks, each row with its own step count, so one attack can
restart (a new binary-search step, a new constant) while the others go on.

This is TensorFlow's Adam as the reference code ran it (beta1 0.9, beta2 0.999, epsilon 1e-8 added
to sqrt(v) after the bias correction folded into the step size). It is element-wise, so a batch
of rows behaves exactly like one Adam per attack.
"""

from __future__ import annotations

import torch

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


class RowAdam:
    def __init__(self, like: torch.Tensor, lr: float) -> None:
        self.lr = lr
        self.m = torch.zeros_like(like)
        self.v = torch.zeros_like(like)
        self.t = torch.zeros(len(like), dtype=like.dtype, device=like.device)

    def step(self, w: torch.Tensor, grad: torch.Tensor) -> None:
        """w -= lr_t * m / (sqrt(v) + eps), lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t), per row."""
        self.t += 1
        self.m.mul_(BETA1).add_(grad, alpha=1 - BETA1)
        self.v.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)
        lr_t = self.lr * torch.sqrt(1 - BETA2 ** self.t) / (1 - BETA1 ** self.t)
        shape = (-1,) + (1,) * (w.dim() - 1)
        w.sub_(lr_t.view(shape) * self.m / (self.v.sqrt() + EPS))

    def reset(self, rows: torch.Tensor) -> None:
        """Fresh state for these rows (the reference re-initialises Adam at each binary step)."""
        self.m[rows] = 0
        self.v[rows] = 0
        self.t[rows] = 0

    def keep(self, rows: torch.Tensor) -> None:
        """Only these rows from now on (finished attacks leave the batch)."""
        self.m, self.v, self.t = self.m[rows], self.v[rows], self.t[rows]
