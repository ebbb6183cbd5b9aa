"""What a Carlini & Wagner attack returns, and its distances measured as C&W report them: on the
[0, 1] scale, L0 counting changed *pixels* (an RGB pixel once, a change above 1e-4 as the reference
code's `equal_count` does), L2 and L-inf over every value."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

CHANGED = 1e-4  # the reference's threshold for a pixel that did not change
OnFinished = Callable[[torch.Tensor], None]  # the success flags of the attacks that just ended


@dataclass
class CWResult:
    x_adv: torch.Tensor  # (N, C, H, W); the original where an attack found nothing
    success: torch.Tensor  # (N,) bool: the model predicts the target on x_adv
    iterations: torch.Tensor  # (N,) Adam iterations spent, all binary steps / constants / solves
    const: torch.Tensor  # (N,) the constant c of the returned example (nan where none was found)
    l0: torch.Tensor  # (N,) pixels changed
    l2: torch.Tensor  # (N,)
    linf: torch.Tensor  # (N,)
    n_pixels: int
    prediction: torch.Tensor | None = None  # (N,) the model's class for x_adv
    # (N,) CW-L2 with abort_early: the last binary step ran out of iterations with the loss still falling
    capped: torch.Tensor | None = None
    # (N,) CW-L2: the last binary step ended with the loss risen by more than RISE of its start (oscillating)
    rose: torch.Tensor | None = None
    # rounds of a larger budget for the attacks that missed (CW-L2's escalations): budget, attacks, reached
    escalations: list[dict[str, float | int]] = field(default_factory=list)

    def merge(self, rows: torch.Tensor, again: CWResult) -> None:
        """Attacks `rows` run again (`again`, in the same order): the new example replaces the old one
        where it succeeded with a smaller L2 (or the old one had failed), iterations add up (both rounds
        were spent), and whether the optimisation finished is the longer run's word."""
        better = again.success & (~self.success[rows] | (again.l2 < self.l2[rows]))
        take = rows[better]
        for name in ("x_adv", "success", "const", "l0", "l2", "linf"):
            getattr(self, name)[take] = getattr(again, name)[better].to(getattr(self, name).dtype)
        if self.prediction is not None and again.prediction is not None:
            self.prediction[take] = again.prediction[better]
        if self.capped is not None and again.capped is not None:
            self.capped[rows] = again.capped
        if self.rose is not None and again.rose is not None:
            self.rose[rows] = again.rose
        self.iterations[rows] += again.iterations

    @property
    def unfinished(self) -> torch.Tensor | None:
        """CW-L2: attacks whose last binary step did not finish (cut with the loss falling, or risen)."""
        if self.capped is None:
            return None
        return self.capped | self.rose if self.rose is not None else self.capped


def distances(x: torch.Tensor, x_adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    d = (x_adv - x).float()
    pixels = (d.abs() > CHANGED).any(1).flatten(1).sum(1) if d.dim() == 4 else (d.abs() > CHANGED).sum(1)
    return pixels, d.flatten(1).norm(dim=1), d.flatten(1).abs().amax(1)


def finish(x: torch.Tensor, x_adv: torch.Tensor, found: torch.Tensor, logits_of: Callable, targets: torch.Tensor,
           iterations: torch.Tensor, const: torch.Tensor) -> CWResult:
    """Success is checked on the returned images themselves (argmax == target), never assumed."""
    x_adv = torch.where(found.view(-1, *([1] * (x.dim() - 1))), x_adv, x)
    with torch.no_grad():
        pred = torch.cat([logits_of(x_adv[i:i + 1024]).argmax(1) for i in range(0, len(x_adv), 1024)]) \
            if len(x_adv) else torch.zeros(0, dtype=torch.long, device=x.device)
    success = found & (pred == targets)
    l0, l2, linf = distances(x, x_adv)
    return CWResult(x_adv=x_adv, success=success, iterations=iterations, const=torch.where(success, const, torch.nan),
                    l0=l0, l2=l2, linf=linf, n_pixels=int(x[0, 0].numel()) if len(x) else 0, prediction=pred)
