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


def _normalise(a: torch.Tensor, b: torch.Tensor, domain: torch.Tensor,
               theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """u = s*a, v = -s*b, each row scaled by its largest |value| (a positive factor per row leaves
    signs and the argmax unchanged, and keeps products of tiny gradients from underflowing).
    Features outside the domain get u = v = -3, so any pair holding one has a negative sum."""
    s = 1.0 if theta > 0 else -1.0
    u, v = s * a, -s * b
    u = u / u.abs().amax(1, keepdim=True).clamp_min(torch.finfo(u.dtype).tiny)
    v = v / v.abs().amax(1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)
    return u.masked_fill(~domain, -3.0), v.masked_fill(~domain, -3.0)


def _best_constrained(u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Best qualifying pair per row among candidates (B, K) listed in ascending feature order.

    Invalid pairs score 0 (both sums clamped at 0), valid ones > 0. argmax returns the first
    maximum in row-major order, which for a symmetric table is the lowest (p, q) with p < q.
    """
    score = (u.unsqueeze(2) + u.unsqueeze(1)).clamp_min_(0)
    score.mul_((v.unsqueeze(2) + v.unsqueeze(1)).clamp_min_(0))
    score.diagonal(dim1=1, dim2=2).zero_()
    flat = score.flatten(1).argmax(1)
    best = score.flatten(1).gather(1, flat.unsqueeze(1)).squeeze(1)
    return flat, best


def best_pairs(a: torch.Tensor, b: torch.Tensor, domain: torch.Tensor, theta: float, *,
               constrained: bool = True, k0: int = 32,
               max_elems: int = 1 << 22) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact best pair per row. Returns (p, q, found); found is False where no pair qualifies.

    a, b: (B, n) gradients of F_t and of sum_{j != t} F_j; domain: (B, n) bool search domain.
    Peak extra memory is about 3 * max_elems * 4 bytes (rows are processed in chunks whose
    K*K pair tables hold at most max_elems scores together), whatever the batch size.
    """
    if not constrained:
        return _best_unconstrained(a, b, domain, theta, max_elems)
    u, v = _normalise(a, b, domain, theta)
    bsz, n = u.shape
    p_out = torch.zeros(bsz, dtype=torch.long, device=u.device)
    q_out = torch.zeros_like(p_out)
    found = torch.zeros(bsz, dtype=torch.bool, device=u.device)
    umax = u.amax(1, keepdim=True)
    vmax = v.amax(1, keepdim=True)
    bound = (u + umax).clamp_min(0) * (v + vmax).clamp_min(0)
    bound.masked_fill_(~domain, 0)
    n_cand = (bound > 0).sum(1)
    # Features ranked by bound (ties by index), so the candidate set is deterministic.
    order = torch.argsort(-bound, dim=1, stable=True)
    pending = torch.arange(bsz, device=u.device)
    k = min(k0, n)
    while pending.numel():
        rows = max(1, max_elems // (k * k))
        still = []
        for start in range(0, pending.numel(), rows):
            r = pending[start:start + rows]
            idx = order[r, :k].sort(dim=1).values  # ascending feature order: argmax ties -> lowest pair
            flat, best = _best_constrained(torch.gather(u[r], 1, idx), torch.gather(v[r], 1, idx))
            if k < n:
                next_bound = torch.gather(bound[r], 1, order[r, k:k + 1]).squeeze(1)
                exact = (best > next_bound) | (n_cand[r] <= k)
            else:
                exact = torch.ones_like(best, dtype=torch.bool)
            done = r[exact]
            pi, qi = flat[exact] // k, flat[exact] % k
            sel = idx[exact]
            p_out[done] = sel.gather(1, pi.unsqueeze(1)).squeeze(1)
            q_out[done] = sel.gather(1, qi.unsqueeze(1)).squeeze(1)
            found[done] = best[exact] > 0
            still.append(r[~exact])
        pending = torch.cat(still) if still else pending[:0]
        k = min(k * 4, n)
    return p_out, q_out, found


def _best_unconstrained(a: torch.Tensor, b: torch.Tensor, domain: torch.Tensor, theta: float,
                        max_elems: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """argmax of alpha * |beta| over domain pairs, no sign conditions (what cleverhans and
    torchattacks fall back to); all n^2 pairs, in chunks of rows."""
    bsz, n = a.shape
    rows = max(1, max_elems // (n * n))
    outs = [best_pairs_bruteforce(a[i:i + rows], b[i:i + rows], domain[i:i + rows], theta, constrained=False)
            for i in range(0, bsz, rows)]
    return tuple(torch.cat(parts) for parts in zip(*outs, strict=True))  # type: ignore[return-value]


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
