"""An attack leaves the caller's model as it found it: its training mode and each parameter's
requires_grad (torchattacks' attack.py does the same), while the attack itself runs in eval mode
with weight gradients off (input gradients only: nothing to compute or keep for the weights)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def attack_mode(model: nn.Module) -> Iterator[None]:
    was_training, needs_grad = model.training, [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
        for p, flag in zip(model.parameters(), needs_grad, strict=True):
            p.requires_grad_(flag)
