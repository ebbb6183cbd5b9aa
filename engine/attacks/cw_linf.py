"""Carlini & Wagner's L-inf attack (S&P 2017; reference code carlini/nn_robust_attacks, li_attack.py),
targeted, on the logits, batched over attacks with per-attack state.

A sequence of solves, each minimising c * f + sum_i max(|x'_i - x_i| - tau, 0) with Adam (lr 5e-3),
x' = (tanh(w + s) + 1)/2 warm-started at the last solution s, f the logit margin (no confidence). A
solve doubles c (from `initial_const`, carried over between solves) every `max_iterations` steps
until the loss is below 1e-4 x c and the updated iterate is classified as the target, or c reaches
`largest_const` (the attack then returns its last solution). After a solve tau becomes
min(tau, max |x' - x|) x 0.9; the attack ends once tau <= 1/256. Adam and w are reset at each solve.

Where this departs from the reference code, and why:
- Batched: each attack has its own tau, c, Adam state and solution; finished attacks leave.
- The paper's text lowers tau only when every |delta_i| < tau; the reference code (followed here)
  lowers it after every solve, to 0.9 x the largest change when that is below tau.
- An attack whose first solve fails returns its input (the reference returns it too, as `prev`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from engine.attacks.adam import RowAdam
from engine.attacks.cw_batches import fresh_outcomes, run_in_batches
from engine.attacks.cw_result import CWResult, OnFinished
from engine.attacks.margin import margin
from engine.attacks.tanh_space import from_tanh_space, to_tanh_space

SMALLEST_TAU = 1.0 / 256


@dataclass
class CWLinfConfig:
    learning_rate: float = 5e-3
    max_iterations: int = 1000  # per constant
    initial_const: float = 1e-5
    largest_const: float = 20.0
    const_factor: float = 2.0
    decrease_factor: float = 0.9
    batch_size: int = 1024


def cw_linf(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, cfg: CWLinfConfig, *,
            on_finished: OnFinished | None = None, pause_point: Callable[[], None] | None = None) -> CWResult:
    return run_in_batches(model, x, targets, cfg.batch_size, "cw_linf",
                          lambda m, xb, tb, done, pause: _attack_batch(m, xb, tb, cfg, done, pause),
                          on_finished, pause_point)


def _attack_batch(model, x, targets, cfg: CWLinfConfig, on_finished, pause_point):
    n, dt, dev = len(x), x.dtype, x.device
    o_adv, o_found, o_const, o_iters, rows = fresh_outcomes(x)
    orig, tgt = x, targets
    base = from_tanh_space(to_tanh_space(x))
    start = to_tanh_space(x)
    w = torch.zeros_like(x)
    adam = RowAdam(w, cfg.learning_rate)
    c = torch.full((n,), cfg.initial_const, dtype=torch.float64, device=dev)
    tau = torch.ones(n, dtype=dt, device=dev)
    it = torch.zeros(n, dtype=torch.long, device=dev)
    view = (-1,) + (1,) * (x.dim() - 1)
    while len(rows):
        if pause_point is not None:
            pause_point()
        w.requires_grad_(True)
        new = from_tanh_space(w + start)
        f = margin(model(new), tgt, 0.0)
        penalty = ((new - base).abs() - tau.view(view)).clamp_min(0).flatten(1).sum(1)
        loss = c.to(dt) * f + penalty
        (grad,) = torch.autograd.grad(loss.sum(), w)
        w, loss = w.detach(), loss.detach()
        adam.step(w, grad)
        o_iters[rows] += 1
        solved = loss < 1e-4 * c.to(dt)
        if bool(solved.any()):  # the reference checks the *updated* iterate's class
            s = solved.nonzero().squeeze(1)
            with torch.no_grad():
                after = from_tanh_space(w[s] + start[s])
                hit = model(after).argmax(1) == tgt[s]
            solved[s[~hit]] = False
            s, after = s[hit], after[hit]
        it = torch.where(solved, 0, it + 1)
        raise_c = ~solved & (it >= cfg.max_iterations)
        c = torch.where(raise_c, c * cfg.const_factor, c)
        it = torch.where(raise_c, 0, it)
        ended = ~solved & (c >= cfg.largest_const)
        if bool(solved.any()):
            r = rows[s]
            o_adv[r], o_found[r], o_const[r] = after, True, c[s]
            actual = (after - orig[s]).abs().flatten(1).amax(1)
            tau[s] = torch.minimum(tau[s], actual) * cfg.decrease_factor
            start[s] = to_tanh_space(after)
            w[s] = 0
            adam.reset(s)
            ended[s] |= tau[s] <= SMALLEST_TAU
        if bool(ended.any()):
            if on_finished is not None:
                on_finished(o_found[rows[ended]].cpu())
            keep = ~ended
            rows, orig, base, tgt, start, w = rows[keep], orig[keep], base[keep], tgt[keep], start[keep], w[keep]
            c, tau, it = c[keep], tau[keep], it[keep]
            adam.keep(keep.nonzero().squeeze(1))
    return o_adv, o_found, o_iters, o_const
