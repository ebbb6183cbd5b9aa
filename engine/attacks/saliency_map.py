"""JSMA's saliency map over pairs of features (Papernot et al., EuroS&P 2016, Algorithm 3).

For a pair (p, q): alpha = a_p + a_q with a = dF_t/dx, beta = b_p + b_q with b = d(sum_{j != t} F_j)/dx.
Increasing (theta > 0): the pair qualifies when alpha > 0 and beta < 0, and the best pair maximises
alpha * |beta|. Decreasing: alpha < 0, beta > 0, maximise |alpha| * beta. With u = s*a, v = -s*b
(s = sign(theta)) both read: u_p + u_q > 0, v_p + v_q > 0, maximise (u_p + u_q)(v_p + v_q).

An exact search need not look at all n^2 pairs. Any pair containing p scores at most
bound_p = (u_p + max u)^+ (v_p + max v)^+. Take the K features of largest bound, search their K^2
pairs, and if the best score found beats the (K+1)-th bound, no pair outside can win: the answer is
the full search's answer. Otherwise K grows (x4) up to n, where it is the full search. Ties go to the
pair with the lowest (p, q), as an argmax over the flattened upper triangle would.
"""

from __future__ import annotations

import torch

NEG = float("-inf")


def _pair_scores(u: torch.Tensor, v: torch.Tensor, ok: torch.Tensor, constrained: bool) -> torch.Tensor:
    """(B, K, K) scores for candidate features (B, K); invalid pairs are -inf."""
    su = u.unsqueeze(2) + u.unsqueeze(1)
    sv = v.unsqueeze(2) + v.unsqueeze(1)
    if constrained:
        score = su * sv
        valid = (su > 0) & (sv > 0)
    else:
        score = su * sv.abs()  # alpha * |beta| with no sign conditions (cleverhans / torchattacks)
        valid = torch.ones_like(score, dtype=torch.bool)
    valid &= ok.unsqueeze(2) & ok.unsqueeze(1)
    return score.masked_fill_(~valid, NEG)


def _pick(score: torch.Tensor, idx: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best pair per row among candidates idx (B, K); ties -> lowest (min, max) original index."""
    bsz, k, _ = score.shape
    eye = torch.eye(k, dtype=torch.bool, device=score.device)
    score = score.masked_fill(eye, NEG)
    best = score.flatten(1).amax(1)
    pi, qi = idx.unsqueeze(2).expand(bsz, k, k), idx.unsqueeze(1).expand(bsz, k, k)
    key = torch.minimum(pi, qi) * n + torch.maximum(pi, qi)
    tied = (score == best.view(-1, 1, 1)) & (best.view(-1, 1, 1) > NEG)
    flat = key.masked_fill(~tied, n * n).flatten(1).amin(1)
    return flat // n, flat % n, best


def best_pairs(a: torch.Tensor, b: torch.Tensor, domain: torch.Tensor, theta: float, *,
               constrained: bool = True, k0: int = 32,
               max_elems: int = 1 << 22) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact best pair per row. Returns (p, q, found); found is False where no pair qualifies.

    a, b: (B, n) gradients of F_t and of sum_{j != t} F_j; domain: (B, n) bool search domain.
    Peak extra memory is about 10 * max_elems * 4 bytes (rows are processed in chunks whose
    K*K pair tables hold at most max_elems scores together), whatever the batch size.
    """
    s = 1.0 if theta > 0 else -1.0
    u, v = s * a, -s * b
    bsz, n = u.shape
    p_out = torch.zeros(bsz, dtype=torch.long, device=u.device)
    q_out = torch.zeros_like(p_out)
    found = torch.zeros(bsz, dtype=torch.bool, device=u.device)
    if constrained:
        umax = u.masked_fill(~domain, NEG).amax(1, keepdim=True)
        vmax = v.masked_fill(~domain, NEG).amax(1, keepdim=True)
        bound = (u + umax).clamp_min(0) * (v + vmax).clamp_min(0)
        bound = bound.masked_fill(~domain | (bound <= 0), NEG)
    else:
        bound = torch.where(domain, 0.0, NEG).expand(bsz, n).contiguous()
    n_cand = (bound > NEG).sum(1)
    # Features are ranked by bound, ties by index, so the candidate set is deterministic.
    order = torch.argsort(-bound, dim=1, stable=True)
    pending = torch.arange(bsz, device=u.device)
    # Without the sign conditions there is no bound to prune with: search every pair (in chunks).
    k = min(k0, n) if constrained else n
    while pending.numel():
        rows = max(1, max_elems // (k * k))
        still = []
        for start in range(0, pending.numel(), rows):
            r = pending[start:start + rows]
            idx = order[r, :k]
            ok = torch.gather(bound[r], 1, idx) > NEG
            score = _pair_scores(torch.gather(u[r], 1, idx), torch.gather(v[r], 1, idx), ok, constrained)
            p, q, best = _pick(score, idx, n)
            if constrained and k < n:
                next_bound = torch.gather(bound[r], 1, order[r, k:k + 1]).squeeze(1)
                exact = (best > next_bound) | (n_cand[r] <= k)
            else:
                exact = torch.ones_like(best, dtype=torch.bool)
            done = r[exact]
            p_out[done], q_out[done] = p[exact], q[exact]
            found[done] = best[exact] > NEG
            still.append(r[~exact])
        pending = torch.cat(still) if still else pending[:0]
        k = min(k * 4, n)
    return p_out, q_out, found


def best_pairs_bruteforce(a: torch.Tensor, b: torch.Tensor, domain: torch.Tensor, theta: float, *,
                          constrained: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All n^2 pairs at once: the plain formulation, kept for tests and the memory benchmark."""
    s = 1.0 if theta > 0 else -1.0
    u, v = s * a, -s * b
    bsz, n = u.shape
    idx = torch.arange(n, device=u.device).expand(bsz, n)
    score = _pair_scores(u, v, domain, constrained)
    p, q, best = _pick(score, idx, n)
    return p, q, best > NEG
