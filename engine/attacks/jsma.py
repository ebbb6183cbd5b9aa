"""JSMA (Papernot et al., EuroS&P 2016, Algorithms 2 and 3), batched over (sample, target) attacks.

Targeted; theta > 0 increases features, theta < 0 decreases them; two features per iteration;
at most floor(n * upsilon / 2) iterations. An attack ends when the model predicts the target,
when the budget is spent, when no pair meets the sign conditions (the default rule; see
`no_pair`), or when fewer than two features remain in the search domain. Finished attacks
leave the batch, so the cost follows the attacks still running.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.attacks.model_state import attack_mode
from engine.attacks.outputs import AttackedOutput
from engine.attacks.saliency_map import best_pairs

ENDED = ("target", "budget", "no_pair", "domain")
RUNNING = -1


@dataclass
class JSMAConfig:
    theta: float = 1.0
    upsilon: float = 0.145
    no_pair: str = "stop"  # "stop" | "unconstrained"
    batch_size: int = 1024
    pair_chunk: int = 1 << 22  # scores per pair-search chunk (engine.device.pair_chunk_elems)
    clip_min: float = 0.0
    clip_max: float = 1.0


@dataclass
class JSMAResult:
    x_adv: torch.Tensor  # (N, C, H, W)
    success: torch.Tensor  # (N,) bool
    ended: torch.Tensor  # (N,) int index into ENDED
    iterations: torch.Tensor  # (N,)
    features_changed: torch.Tensor  # (N,) count of changed input values
    pixels_changed: torch.Tensor  # (N,) count of changed pixels (any channel)
    prediction: torch.Tensor  # (N,) final predicted class
    n_features: int
    max_iterations: int
    unconstrained_steps: int  # iterations that took a pair failing the sign conditions


def max_iterations(n_features: int, upsilon: float) -> int:
    return math.floor(n_features * upsilon / 2)


def target_gradients(output: AttackedOutput, x: torch.Tensor, targets: torch.Tensor,
                     use_identity: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(a, b, logits): a = dF_t/dx, b = d(sum_{j != t} F_j)/dx, flattened to (B, n).

    Two backward passes in general; one where F sums to 1 (b = -a exactly).
    """
    x = x.detach().requires_grad_(True)
    out, logits = output(x)
    onehot = torch.nn.functional.one_hot(targets, out.shape[1]).to(out.dtype)
    if use_identity and output.sums_to_one:
        (a,) = torch.autograd.grad(out, x, onehot)
        a = a.flatten(1)
        return a, -a, logits.detach()
    (a,) = torch.autograd.grad(out, x, onehot, retain_graph=True)
    (b,) = torch.autograd.grad(out, x, 1.0 - onehot)
    return a.flatten(1), b.flatten(1), logits.detach()


def jsma(output: AttackedOutput, x: torch.Tensor, targets: torch.Tensor, cfg: JSMAConfig, *,
         on_finished: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
         pause_point: Callable[[], None] | None = None) -> JSMAResult:
    """Attack each x[i] towards targets[i]. `on_finished(success, ended)` is called with the
    attacks that ended in each iteration (for live counters); `pause_point` between iterations.
    The model is left as it was found: training mode and each parameter's requires_grad."""
    with attack_mode(output.model) as net:
        return _jsma(dataclasses.replace(output, model=net), x, targets, cfg, on_finished, pause_point)


def _jsma(output: AttackedOutput, x: torch.Tensor, targets: torch.Tensor, cfg: JSMAConfig,
          on_finished: Callable[[torch.Tensor, torch.Tensor], None] | None,
          pause_point: Callable[[], None] | None) -> JSMAResult:
    device = next(output.model.parameters()).device
    shape = x.shape[1:]
    n = int(torch.tensor(shape).prod())
    limit = max_iterations(n, cfg.upsilon)
    total = len(x)
    x_adv = x.detach().clone().to(torch.float32)
    ended = torch.full((total,), RUNNING, dtype=torch.long)
    iterations = torch.zeros(total, dtype=torch.long)
    prediction = torch.zeros(total, dtype=torch.long)
    unconstrained_steps = 0
    for start in range(0, total, cfg.batch_size):
        sl = slice(start, min(start + cfg.batch_size, total))
        xb = x_adv[sl].to(device).flatten(1)
        tb = targets[sl].to(device)
        dom = (xb < cfg.clip_max) if cfg.theta > 0 else (xb > cfg.clip_min)
        its = torch.zeros(len(xb), dtype=torch.long, device=device)
        end_b = torch.full((len(xb),), RUNNING, dtype=torch.long, device=device)
        pred_b = torch.zeros(len(xb), dtype=torch.long, device=device)
        active = torch.arange(len(xb), device=device)
        while active.numel():
            if pause_point is not None:
                pause_point()
            xa, ta = xb[active], tb[active]
            a, b, logits = target_gradients(output, xa.view(-1, *shape), ta)
            pred = logits.argmax(1)
            pred_b[active] = pred
            code = torch.full_like(active, RUNNING)
            code[its[active] >= limit] = ENDED.index("budget")
            code[dom[active].sum(1) < 2] = ENDED.index("domain")
            code[pred == ta] = ENDED.index("target")  # reaching the target wins over the other rules
            go = code == RUNNING
            if go.any():
                p, q, found = best_pairs(a[go], b[go], dom[active[go]], cfg.theta, max_elems=cfg.pair_chunk)
                if cfg.no_pair == "unconstrained" and not bool(found.all()):
                    miss = ~found
                    p2, q2, _ = best_pairs(a[go][miss], b[go][miss], dom[active[go]][miss], cfg.theta,
                                           constrained=False, max_elems=cfg.pair_chunk)
                    p[miss], q[miss] = p2, q2
                    unconstrained_steps += int(miss.sum())
                    found = torch.ones_like(found)
                rows = active[go]
                stuck = ~found
                code_go = code[go]
                code_go[stuck] = ENDED.index("no_pair")
                code[go] = code_go
                move, pm, qm = rows[found], p[found], q[found]
                xb[move, pm] = (xb[move, pm] + cfg.theta).clamp(cfg.clip_min, cfg.clip_max)
                xb[move, qm] = (xb[move, qm] + cfg.theta).clamp(cfg.clip_min, cfg.clip_max)
                dom[move, pm] = False
                dom[move, qm] = False
                its[move] += 1
            done = code != RUNNING
            if done.any():
                end_b[active[done]] = code[done]
                if on_finished is not None:
                    c = code[done].cpu()
                    on_finished(c == ENDED.index("target"), c)
            active = active[~done]
        x_adv[sl] = xb.view(-1, *shape).cpu()
        ended[sl] = end_b.cpu()
        iterations[sl] = its.cpu()
        prediction[sl] = pred_b.cpu()
    changed = x_adv != x.to(torch.float32)
    return JSMAResult(
        x_adv=x_adv, success=ended == ENDED.index("target"), ended=ended, iterations=iterations,
        features_changed=changed.flatten(1).sum(1), pixels_changed=changed.any(1).flatten(1).sum(1)
        if changed.dim() == 4 else changed.flatten(1).sum(1),
        prediction=prediction, n_features=n, max_iterations=limit, unconstrained_steps=unconstrained_steps)
