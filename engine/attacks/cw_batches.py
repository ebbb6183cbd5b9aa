"""The loop every Carlini & Wagner attack shares: the attacks split into batches of
`batch_size`, each solved on the model's device with the model in attack mode, the results put
back in order on the CPU and checked on the returned images (`finish`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from engine.attacks.cw_result import CWResult, OnFinished, finish
from engine.attacks.margin import require_logits
from engine.attacks.model_state import attack_mode

# (model, x, targets, on_finished, pause_point) -> (x_adv, found, iterations, const[, capped, rose]) for one batch;
# capped (CW-L2): the attack's last binary step ran out of iterations with its loss still falling; rose: it
# ended with its loss risen (an optimiser that overshoots)
BatchAttack = Callable[..., tuple[torch.Tensor, ...]]


def run_in_batches(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, batch_size: int, name: str,
                   attack_batch: BatchAttack, on_finished: OnFinished | None,
                   pause_point: Callable[[], None] | None) -> CWResult:
    device = next(model.parameters()).device
    require_logits(model, x.to(device), name)
    out_adv = x.detach().clone()
    found = torch.zeros(len(x), dtype=torch.bool)
    iters = torch.zeros(len(x), dtype=torch.long)
    const = torch.full((len(x),), float("nan"), dtype=torch.float64)
    capped: torch.Tensor | None = None
    rose: torch.Tensor | None = None
    with attack_mode(model) as model:
        for start in range(0, len(x), batch_size):
            sl = slice(start, min(start + batch_size, len(x)))
            adv, ok, it, c, *rest = attack_batch(model, x[sl].to(device), targets[sl].to(device), on_finished,
                                                 pause_point)
            out_adv[sl], found[sl], iters[sl], const[sl] = adv.cpu(), ok.cpu(), it.cpu(), c.cpu()
            if rest:
                capped = torch.zeros(len(x), dtype=torch.bool) if capped is None else capped
                rose = torch.zeros(len(x), dtype=torch.bool) if rose is None else rose
                capped[sl], rose[sl] = rest[0].cpu(), rest[1].cpu()
        result = finish(x, out_adv, found, lambda xb: model(xb.to(device)).cpu(), targets, iters, const)
        result.capped, result.rose = capped, rose
        return result


def fresh_outcomes(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per attack of a batch before its first step: the answer (the input itself), found (no), its
    constant c (nan), Adam iterations spent (0), and the rows still attacking (all)."""
    n, dev = len(x), x.device
    return (x.clone(), torch.zeros(n, dtype=torch.bool, device=dev),
            torch.full((n,), float("nan"), dtype=torch.float64, device=dev),
            torch.zeros(n, dtype=torch.long, device=dev), torch.arange(n, device=dev))
