"""Carlini & Wagner's L2 attack (S&P 2017; reference code carlini/nn_robust_attacks, l2_attack.py),
targeted, on the logits, batched over attacks with per-attack state.

Minimise ||x' - x||_2^2 + c * max(max_{i != t} Z_i - Z_t + kappa, 0) over w, x' = (tanh(w) + 1)/2,
with Adam. A binary search over c per attack: c starts at `initial_const`; after a binary step
that found an example, upper = min(upper, c), else lower = max(lower, c); then c is the midpoint
once an upper bound exists, else c x 10. Adam and w are reset at every binary step. Within a step,
every tenth of `max_iterations` the loss is compared with its value a tenth earlier and the step
ends when it has not fallen below 0.9999 of it. The smallest-L2 example seen at any iteration of
any step is returned. With 10 or more binary steps the last one uses c = upper, as the reference.

Where this departs from the reference code, and why:
- The reference's early abort looks at the loss summed over its whole batch (with its default
  batch of one that is per attack); here each attack aborts on its own loss, so a batch of attacks
  reaches exactly the outcome and c of each attack run alone, and finished attacks leave the batch.
- The box is [0, 1] instead of [-0.5, 0.5]: the same map shifted, the same distances.
- An attack that never succeeds returns its input (the reference returns an all-zero image).
- `escalations` (0, the reference, unless set): CW-L2 has no distortion bound, so a miss is a failure of the
  attack's budget until shown otherwise (Carlini et al. 2019). Every miss, whatever their share, is attacked
  again with twice the iterations and ten times the first constant (at least the digits preset's 6 binary
  steps of 500 iterations, the learning rate at most 0.05), up to `escalations` rounds; the result records
  each round. What still misses after them is then evidence: about the gradient where another attack reaches
  the target, about the budget where none does (the verdict's checks say which). An attack whose last binary
  step did not finish (`capped`: it ran out of iterations with the loss still falling, abort_early's own test,
  or it ended with the loss rising by more than `RISE`, an optimiser that oscillates: Pintor et al.'s
  incomplete optimisation) is attacked again too, and keeps the smaller of its examples; what is still
  unfinished after the rounds is said by the verdict's "white-box optimisation unfinished" check.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn

from engine.attacks.adam import RowAdam
from engine.attacks.cw_batches import run_in_batches
from engine.attacks.cw_result import CWResult, OnFinished
from engine.attacks.margin import margin, reaches_target
from engine.attacks.tanh_space import from_tanh_space, to_tanh_space

NO_BOUND = 1e10  # the reference's "no upper bound yet" (checked as < 1e9)


@dataclass
class CWL2Config:
    confidence: float = 0.0  # kappa
    learning_rate: float = 1e-2
    binary_search_steps: int = 9
    max_iterations: int = 10_000
    abort_early: bool = True
    initial_const: float = 1e-3
    batch_size: int = 1024
    escalations: int = 0  # rounds of a larger budget for the misses (0: the reference's single run)


# a binary step that ends with its loss risen, since the last check, by more than this share of the loss the
# step started from did not settle: the optimiser overshoots (a learning rate too large for the constant), so its
# distance is no minimum. Measured against the step's own start, a rise is not confused with a loss that is small
# (an example that already sits at the boundary): on the digits baseline (20 inputs) the digits preset and a
# sound attack from c = 100 count 0/20, the badly tuned control (lr 0.2, one step of 20 iterations) 2/20
RISE = 0.05
# an escalation's budget is at least the digits preset's reduced one (6 binary steps of 500 iterations at a
# learning rate of at most 0.05), which reaches every target of an honest Table I net: a budget set far below
# it (one binary step of 20 iterations) is escalated from there, not from itself
ESCALATION_LR = 0.05
ESCALATION_STEPS = 6
ESCALATION_ITERATIONS = 500


def escalation_label(round_: int, budget: CWL2Config) -> str:
    """An escalation round in words, for its progress bar."""
    return (f"escalation {round_}: {budget.binary_search_steps} binary steps of {budget.max_iterations:,} "
            f"iterations")


def escalated(cfg: CWL2Config, missed: bool = True) -> CWL2Config:
    """The next round's budget for the attacks that missed (`missed`) or did not finish."""
    # twice the iterations: the default digits baseline's one miss (label 6 -> 2) was reached at 1,000
    # where 500 stopped short, whatever the constants; more binary steps cost 1,000 iterations each and
    # reached nothing more there. For a miss the constant starts 10x higher (a miss is rarely a too-large c);
    # an unfinished success starts where it started, and the binary search halves c from there (with a
    # constant 10x higher the badly tuned control's c = 100 became 1,000 and its optimisation stayed unfinished).
    # A learning rate above ESCALATION_LR oscillates in tanh space (the loss rises between checks).
    return replace(cfg, max_iterations=2 * max(cfg.max_iterations, ESCALATION_ITERATIONS),
                   binary_search_steps=max(cfg.binary_search_steps, ESCALATION_STEPS),
                   initial_const=(10 if missed else 1) * cfg.initial_const,
                   learning_rate=min(cfg.learning_rate, ESCALATION_LR))


# an escalation round about to start: (its number from 1, the attacks it repeats, its budget) -> the
# progress callback of that round (its own bar: a round repeats attacks the first bar already counted)
OnEscalation = Callable[[int, int, CWL2Config], OnFinished | None]


def cw_l2(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, cfg: CWL2Config, *,
          on_finished: OnFinished | None = None, pause_point: Callable[[], None] | None = None,
          on_escalation: OnEscalation | None = None) -> CWResult:
    """Attack each x[i] (values in [0, 1]) towards targets[i]; `model` returns logits. With
    cfg.escalations, a few misses, and every success whose optimisation was cut with its loss still
    falling, are attacked again with a larger budget (result.escalations says how; `on_escalation`
    gives each round its progress)."""
    result = run_in_batches(model, x, targets, cfg.batch_size, "cw_l2",
                            lambda m, xb, tb, done, pause: _attack_batch(m, xb, tb, cfg, done, pause),
                            on_finished, pause_point)
    budgets = {True: cfg, False: cfg}  # the misses' budget, the unfinished successes'
    for _ in range(cfg.escalations):
        missed = ~result.success
        # a success whose optimisation did not finish: its distance over-estimates the minimal one
        unfinished = result.success & result.unfinished  # _attack_batch always reports capped and rose
        if not bool((missed | unfinished).any()):
            break
        for is_miss, rows in ((True, missed), (False, unfinished)):
            redo = rows.nonzero().flatten()
            if not len(redo):
                continue
            budget = budgets[is_miss] = escalated(budgets[is_miss], is_miss)
            progress = on_escalation(len(result.escalations) + 1, len(redo), budget) if on_escalation else None
            again = run_in_batches(model, x[redo], targets[redo], budget.batch_size, "cw_l2",
                                   lambda m, xb, tb, done, pause, b=budget: _attack_batch(m, xb, tb, b, done, pause),
                                   progress, pause_point)
            result.merge(redo, again)
            result.escalations.append({"max_iterations": budget.max_iterations,
                                       "binary_search_steps": budget.binary_search_steps,
                                       "initial_const": budget.initial_const,
                                       "learning_rate": budget.learning_rate, "attacks": len(redo),
                                       "missed": len(redo) if is_miss else 0,
                                       "unfinished": 0 if is_miss else len(redo),
                                       "reached": int(again.success.sum())})
    return result


def _attack_batch(model, x, targets, cfg: CWL2Config, on_finished, pause_point):
    n, dt, dev = len(x), x.dtype, x.device
    # results, by attack
    o_best_l2 = torch.full((n,), NO_BOUND, dtype=dt, device=dev)
    o_best_adv = x.clone()
    o_found = torch.zeros(n, dtype=torch.bool, device=dev)
    o_const = torch.full((n,), float("nan"), dtype=torch.float64, device=dev)
    o_iters = torch.zeros(n, dtype=torch.long, device=dev)
    # whether an attack's latest binary step ran out of iterations with its loss still falling (abort_early
    # on): its optimisation did not finish, so its distance is an over-estimate (Pintor et al. 2022)
    o_capped = torch.zeros(n, dtype=torch.bool, device=dev)
    o_rose = torch.zeros(n, dtype=torch.bool, device=dev)
    # state of the attacks still running (row r of these is attack rows[r])
    rows = torch.arange(n, device=dev)
    timg = to_tanh_space(x)
    base = from_tanh_space(timg)  # what the reference measures distances against
    tgt = targets
    w = torch.zeros_like(x)
    adam = RowAdam(w, cfg.learning_rate)
    c = torch.full((n,), cfg.initial_const, dtype=torch.float64, device=dev)
    lower = torch.zeros(n, dtype=torch.float64, device=dev)
    upper = torch.full((n,), NO_BOUND, dtype=torch.float64, device=dev)
    step = torch.zeros(n, dtype=torch.long, device=dev)  # binary-search step
    it = torch.zeros(n, dtype=torch.long, device=dev)  # iteration within the step
    # the reference starts its abort reference at infinity (its "avoid early breaking" fix): a step whose
    # first loss is above 1e6, as at T = 100, would otherwise stop after one iteration
    prev = torch.full((n,), math.inf, dtype=dt, device=dev)
    start = torch.zeros(n, dtype=dt, device=dev)  # each step's first loss: the scale a rise is measured on
    best_l2 = torch.full((n,), NO_BOUND, dtype=dt, device=dev)  # this binary step's
    best_ok = torch.zeros(n, dtype=torch.bool, device=dev)
    check_every = max(1, cfg.max_iterations // 10)
    repeat = cfg.binary_search_steps >= 10
    dims = tuple(range(1, x.dim()))
    while len(rows):
        if pause_point is not None:
            pause_point()
        w.requires_grad_(True)
        new = from_tanh_space(w + timg)
        logits = model(new)
        l2 = ((new - base) ** 2).sum(dims)
        f = margin(logits, tgt, cfg.confidence)
        loss = l2 + c.to(dt) * f
        (grad,) = torch.autograd.grad(loss.sum(), w)
        w = w.detach()
        new, l2, loss, logits = new.detach(), l2.detach(), loss.detach(), logits.detach()
        adam.step(w, grad)  # the values above are those before this update, as the reference fetches them
        it += 1
        start = torch.where(it == 1, loss, start)
        o_iters[rows] += 1
        # early abort, every tenth of the iterations: the loss must have fallen below 0.9999 of its last check
        check = (it - 1) % check_every == 0
        abort = cfg.abort_early & check & (loss > prev * 0.9999)
        prev = torch.where(check & ~abort, loss, prev)
        ok = reaches_target(logits, tgt, cfg.confidence) & ~abort
        better = ok & (l2 < best_l2)
        best_l2, best_ok = torch.where(better, l2, best_l2), best_ok | better
        obetter = ok & (l2 < o_best_l2[rows])
        if bool(obetter.any()):
            r = rows[obetter]
            o_best_l2[r], o_best_adv[r], o_found[r], o_const[r] = l2[obetter], new[obetter], True, c[obetter]
        ended = abort | (it >= cfg.max_iterations)
        if not bool(ended.any()):
            continue
        # the binary search over c, for the attacks whose step ended
        e = ended
        # unfinished: out of iterations with the loss still falling, or aborted with the loss rising
        o_capped[rows[e]] = (cfg.abort_early & ~abort)[e]
        o_rose[rows[e]] = (abort & (loss - prev > RISE * start))[e]
        upper = torch.where(e & best_ok, torch.minimum(upper, c), upper)
        lower = torch.where(e & ~best_ok, torch.maximum(lower, c), lower)
        bounded = upper < 1e9
        c = torch.where(e, torch.where(bounded, (lower + upper) / 2, torch.where(best_ok, c, c * 10)), c)
        step = step + e.long()
        if repeat:
            c = torch.where(e & (step == cfg.binary_search_steps - 1), upper, c)
        # a fresh step: w, Adam, the abort reference and the step's best reset
        w[e] = 0
        adam.reset(e.nonzero().squeeze(1))
        it, prev = torch.where(e, 0, it), torch.where(e, torch.full_like(prev, math.inf), prev)
        best_l2, best_ok = torch.where(e, NO_BOUND, best_l2), best_ok & ~e
        done = step >= cfg.binary_search_steps
        if bool(done.any()):
            if on_finished is not None:
                on_finished(o_found[rows[done]].cpu())
            keep = ~done
            rows, timg, base, tgt, w = rows[keep], timg[keep], base[keep], tgt[keep], w[keep]
            adam.keep(keep.nonzero().squeeze(1))
            c, lower, upper, step, it, prev = c[keep], lower[keep], upper[keep], step[keep], it[keep], prev[keep]
            start = start[keep]
            best_l2, best_ok = best_l2[keep], best_ok[keep]
    return o_best_adv, o_found, o_iters, o_const, o_capped, o_rose
