"""SimBA (Guo et al., ICML 2019, "Simple Black-box Adversarial Attacks"), targeted, pixel basis:
a score-based attack that uses no gradient at all, batched over attacks.

Each attack walks one random order of the input's values; at each one it tries x - eps e_i, then
x + eps e_i (clipped to [0, 1]), and keeps the first that raises the target's score margin
log p_t - max_{j != t} log p_j. An attack ends when the model predicts the target, when its query
budget is spent, or when every value has been tried once: as in the reference (Guo et al.'s
simba_single), each value moves at most once, so the example stays within +-eps of the input in
every coordinate (an L-inf ball of radius eps) and its L2 is eps times the root of the values moved.
Finished attacks leave the batch.

The scores are the deployed model's log-probabilities, log_softmax(z) at T = 1, as an API that
returns log-scores gives them. That is the point of running it: a defence whose float32 softmax
saturates (exactly 0 and 1) gives a gradient attack nothing, but the log-scores still order the
candidates, so a gap between this attack and the white-box one is evidence of masked gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from engine.attacks.model_state import attack_mode


@dataclass
class SimBAConfig:
    epsilon: float = 0.2
    max_queries: int = 2000
    batch_size: int = 1024
    seed: int = 0


@dataclass
class SimBAResult:
    x_adv: torch.Tensor
    success: torch.Tensor  # (N,) bool: the model predicts the target
    queries: torch.Tensor  # (N,) model evaluations spent (the first one, of x itself, included)


def _margin(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        logp = torch.log_softmax(model(x).double(), dim=1)
    real = logp.gather(1, targets.unsqueeze(1)).squeeze(1)
    other = logp.scatter(1, targets.unsqueeze(1), float("-inf")).amax(1)
    return real - other, logp.argmax(1)


def simba(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, cfg: SimBAConfig, *,
          on_finished: Callable[[torch.Tensor], None] | None = None,
          pause_point: Callable[[], None] | None = None) -> SimBAResult:
    device = next(model.parameters()).device
    out = x.detach().clone()
    success = torch.zeros(len(x), dtype=torch.bool)
    queries = torch.zeros(len(x), dtype=torch.long)
    gen = torch.Generator().manual_seed(cfg.seed)
    with attack_mode(model) as model:
        for start in range(0, len(x), cfg.batch_size):
            sl = slice(start, min(start + cfg.batch_size, len(x)))
            adv, ok, q = _batch(model, x[sl].to(device), targets[sl].to(device), cfg, gen, on_finished, pause_point)
            out[sl], success[sl], queries[sl] = adv.cpu(), ok.cpu(), q.cpu()
    return SimBAResult(out, success, queries)


def _batch(model, x, targets, cfg: SimBAConfig, gen, on_finished, pause_point):
    n, shape = len(x), x.shape[1:]
    dims = int(torch.tensor(shape).prod())
    o_adv, o_ok = x.clone(), torch.zeros(n, dtype=torch.bool, device=x.device)
    o_q = torch.ones(n, dtype=torch.long, device=x.device)
    rows = torch.arange(n, device=x.device)
    cur, tgt = x.flatten(1).clone(), targets
    score, pred = _margin(model, x, targets)
    order = torch.stack([torch.randperm(dims, generator=gen) for _ in range(n)]).to(x.device)
    pos = torch.zeros(n, dtype=torch.long, device=x.device)
    while len(rows):
        if pause_point is not None:
            pause_point()
        done = (pred == tgt) | (o_q[rows] >= cfg.max_queries) | (pos >= dims)
        if bool(done.any()):
            r = rows[done]
            o_adv[r], o_ok[r] = cur[done].view(-1, *shape), pred[done] == tgt[done]
            if on_finished is not None:
                on_finished(o_ok[r].cpu())
            keep = ~done
            rows, cur, tgt, score, pred, order, pos = (rows[keep], cur[keep], tgt[keep], score[keep], pred[keep],
                                                       order[keep], pos[keep])
            if not len(rows):
                break
        idx = order[torch.arange(len(rows), device=x.device), pos]
        pos += 1
        improved = torch.zeros(len(rows), dtype=torch.bool, device=x.device)
        for sign in (-1.0, 1.0):
            trial = cur.clone()
            col = trial.gather(1, idx.unsqueeze(1))
            trial.scatter_(1, idx.unsqueeze(1), (col + sign * cfg.epsilon).clamp(0, 1))
            ask = ~improved & (trial.gather(1, idx.unsqueeze(1)) != col).squeeze(1)  # a clipped no-op costs nothing
            if not bool(ask.any()):
                continue
            s, p = _margin(model, trial[ask].view(-1, *shape), tgt[ask])
            o_q[rows[ask]] += 1
            better = torch.zeros_like(improved)
            better[ask] = s > score[ask]
            cur[better] = trial[better]
            score[better] = s[better[ask]]
            pred[better] = p[better[ask]]
            improved |= better
    return o_adv, o_ok, o_q
