"""Carlini & Wagner's L0 attack (S&P 2017; reference code carlini/nn_robust_attacks, l0_attack.py),
targeted, on the logits, batched over attacks with per-attack state.

Repeated L2 solves over a shrinking set of allowed pixels. A solve minimises c * f + ||x' - x||_2^2
with x' = (tanh(w + s) + 1)/2 on the allowed pixels (the original elsewhere), f the logit margin with
confidence 0.01, warm-started at the last solution s; Adam is reset at each solve but not between
constants. A solve runs up to `max_iterations` Adam steps per c and doubles c (from `initial_const`,
carried over from solve to solve) until the margin is below 1e-4 (the iterate *before* that step
is the solution) or c reaches `largest_const`, where the attack ends and returns its last solution.
After each solve, every allowed pixel is scored by |sum over channels of its change| x sum over
channels of |gradient of the loss| and pixels are frozen from the lowest score up: the first pixel
whose score exceeds 0.01 is frozen and ends the round, as does reaching 0.3 x sqrt(pixels changed)
frozen pixels. An RGB pixel counts, and is frozen, once.

Where this departs from the reference code, and why:
- Batched: each attack keeps its own allowed set, c, Adam state and solution, so a batch of
  attacks reaches what each would alone; finished attacks leave the batch.
- Ties between pixel scores are broken by pixel index (a stable sort); NumPy's default quicksort
  in the reference breaks them in an unspecified order.
- The reference's `abort_early = False` branch compares an iteration number with c (a typo); this
  always takes the first solution, which is the reference's default behaviour.
- An attack whose first solve fails returns its input (the reference returns None).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from engine.attacks.adam import RowAdam
from engine.attacks.cw_batches import fresh_outcomes, run_in_batches
from engine.attacks.cw_result import CHANGED, CWResult, OnFinished
from engine.attacks.margin import margin
from engine.attacks.tanh_space import from_tanh_space, to_tanh_space

SOLVED = 1e-4  # the margin below which a solve has its solution
CONFIDENCE = 0.01  # the reference's fixed margin inside a solve


@dataclass
class CWL0Config:
    learning_rate: float = 1e-2
    max_iterations: int = 1000  # per constant
    initial_const: float = 1e-3
    largest_const: float = 2e6
    const_factor: float = 2.0
    batch_size: int = 1024


def freeze_count(scores: torch.Tensor, changed: torch.Tensor) -> torch.Tensor:
    """How many of the lowest-scored allowed pixels a round freezes, per row. `scores` (B, P) are
    sorted ascending over the allowed pixels (+inf past them). The reference's loop freezes one
    pixel, then stops if its score > 0.01 or if it has frozen >= 0.3 sqrt(changed)."""
    n_allowed = torch.isfinite(scores).sum(1)
    big = scores > 0.01
    first_big = torch.where(big.any(1), big.float().argmax(1) + 1, torch.full_like(n_allowed, scores.shape[1] + 1))
    by_count = torch.clamp(torch.ceil(0.3 * changed.double().sqrt()).long(), min=1)
    return torch.minimum(torch.minimum(first_big, by_count), n_allowed)


def cw_l0(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, cfg: CWL0Config, *,
          on_finished: OnFinished | None = None, pause_point: Callable[[], None] | None = None) -> CWResult:
    return run_in_batches(model, x, targets, cfg.batch_size, "cw_l0",
                          lambda m, xb, tb, done, pause: _attack_batch(m, xb, tb, cfg, done, pause),
                          on_finished, pause_point)


def _attack_batch(model, x, targets, cfg: CWL0Config, on_finished, pause_point):
    n, dt, dev = len(x), x.dtype, x.device
    pixels = x[0, 0].numel()
    o_adv, o_found, o_const, o_iters, rows = fresh_outcomes(x)  # o_adv: the last solution (answer if a solve fails)
    orig, tgt = x, targets
    base = from_tanh_space(to_tanh_space(x))
    allowed = torch.ones(n, pixels, dtype=torch.bool, device=dev)  # per pixel, all channels together
    start = to_tanh_space(x)  # the warm start: the last solution in tanh space
    w = torch.zeros_like(x)
    adam = RowAdam(w, cfg.learning_rate)
    c = torch.full((n,), cfg.initial_const, dtype=torch.float64, device=dev)
    it = torch.zeros(n, dtype=torch.long, device=dev)  # iteration at this c
    while len(rows):
        if pause_point is not None:
            pause_point()
        mask = allowed.view(len(rows), 1, *x.shape[2:]).to(dt)
        w.requires_grad_(True)
        new = from_tanh_space(w + start) * mask + (1 - mask) * orig
        logits = model(new)
        f = margin(logits, tgt, CONFIDENCE)
        loss = c.to(dt) * f + ((new - base) ** 2).flatten(1).sum(1)
        (grad,) = torch.autograd.grad(loss.sum(), w)
        w, new, f = w.detach(), new.detach(), f.detach()
        o_iters[rows] += 1
        solved = f < SOLVED  # this iterate (before any update) is the solve's solution, with its gradient
        adam.step(w, grad)  # solved rows are reset below: their update is discarded, as the reference restores w
        it = torch.where(solved, 0, it + 1)
        # constants that ran out of iterations double; past the largest, the attack ends
        raise_c = ~solved & (it >= cfg.max_iterations)
        c = torch.where(raise_c, c * cfg.const_factor, c)
        it = torch.where(raise_c, 0, it)
        gave_up = ~solved & (c >= cfg.largest_const)
        ended = gave_up.clone()
        if bool(solved.any()):
            s = solved.nonzero().squeeze(1)
            r = rows[s]
            o_adv[r], o_found[r], o_const[r] = new[s], True, c[s]
            change = (new[s] - orig[s]).sum(1).flatten(1).abs()  # |sum over channels|, per pixel
            score = change * grad[s].abs().sum(1).flatten(1)
            moved = ((new[s] - orig[s]).abs() > CHANGED).any(1).flatten(1).sum(1)
            score = score.masked_fill(~allowed[s], float("inf"))
            order = torch.argsort(score, dim=1, stable=True)
            k = freeze_count(torch.gather(score, 1, order), moved)
            freeze = torch.arange(pixels, device=dev).unsqueeze(0) < k.unsqueeze(1)
            frozen = torch.zeros_like(allowed[s]).scatter_(1, order, freeze)
            allowed[s] &= ~frozen
            # the next solve: warm start at this solution, fresh Adam, c carried over
            start[s] = to_tanh_space(new[s])
            w[s] = 0
            adam.reset(s)
            ended[s] |= ~allowed[s].any(1)  # nothing left to change: the last solution stands
        if bool(ended.any()):
            if on_finished is not None:
                on_finished(o_found[rows[ended]].cpu())
            keep = ~ended
            rows, orig, base, tgt, allowed = rows[keep], orig[keep], base[keep], tgt[keep], allowed[keep]
            start, w, c, it = start[keep], w[keep], c[keep], it[keep]
            adam.keep(keep.nonzero().squeeze(1))
    return o_adv, o_found, o_iters, o_const
