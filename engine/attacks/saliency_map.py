"""JSMA's saliency map over pairs of features (Papernot et al., EuroS&P 2016, Algorithm 3).

For a pair (p, q): alpha = a_p + a_q with a = dF_t/dx, beta = b_p + b_q with b = d(sum_{j != t} F_j)/dx.
Increasing (theta > 0): the pair qualifies when alpha > 0 and beta < 0, and the best pair maximises
alpha * |beta|. Decreasing: alpha < 0, beta > 0, maximise |alpha| * beta. With u = s*a, v = -s*b
(s = sign(theta)) both read: u_p + u_q > 0, v_p + v_q > 0, maximise (u_p + u_q)(v_p + v_q).

An exact search need not look at all n^2 pairs. Any pair containing p scores at most bound_p
(see _pair_bound: p's best partner lies on the Pareto frontier of the (u, v) points). Take the K
features of largest bound, search their K^2 pairs, and if the best score found beats the (K+1)-th
bound, no pair outside can win: the answer is the full search's answer. Otherwise K grows (x4) up
to n, where it is the full search. Ties go to the lowest (p, q), as Algorithm 3's loop with a
strict ">" would.
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


def _pair_bound(u: torch.Tensor, v: torch.Tensor, max_elems: int) -> torch.Tensor:
    """Per feature p, an upper bound on the score of any qualifying pair that contains p.

    For a fixed p the score (u_p + u_q)(v_p + v_q) only grows when (u_q, v_q) grows in both
    coordinates, so the best partner is dominated by a point of the Pareto frontier of
    {(u_q, v_q)}: the maximum over frontier points f of (u_p + u_f)^+ (v_p + v_f)^+ bounds it.
    The frontier of a few hundred gradient values is short (tens of points), so this costs
    O(n * frontier) and is far tighter than (u_p + max u)(v_p + max v).
    """
    # sort by u descending, ties by v descending; a point is on the frontier when its v beats
    # every v before it
    by_v = torch.argsort(-v, dim=1, stable=True)
    by_u = torch.gather(by_v, 1, torch.argsort(-torch.gather(u, 1, by_v), dim=1, stable=True))
    us, vs = torch.gather(u, 1, by_u), torch.gather(v, 1, by_u)
    prev = torch.cummax(vs, dim=1).values.roll(1, dims=1)
    prev[:, 0] = float("-inf")
    front = vs > prev
    width = int(front.sum(1).max())
    # pack each row's frontier to the left (stable), pad with points that contribute nothing
    pos = torch.argsort((~front).to(torch.int8), dim=1, stable=True)[:, :width]
    keep = torch.gather(front, 1, pos)
    uf = torch.gather(us, 1, pos).masked_fill(~keep, -3.0)
    vf = torch.gather(vs, 1, pos).masked_fill(~keep, -3.0)
    rows = max(1, max_elems // (u.shape[1] * max(width, 1)))
    parts = []
    for i in range(0, len(u), rows):
        sl = slice(i, i + rows)
        score = (u[sl].unsqueeze(2) + uf[sl].unsqueeze(1)).clamp_min_(0)
        score.mul_((v[sl].unsqueeze(2) + vf[sl].unsqueeze(1)).clamp_min_(0))
        parts.append(score.amax(2))
    return torch.cat(parts)


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
    Rows are processed in chunks whose pair tables hold at most max_elems scores (16 MiB of
    float32 at the default), whatever the batch size; bench/pair_search_memory.py measures the
    peak (75 MB for 900 MNIST attacks, against 16.9 GB for the plain (B, n, n) table).
    """
    if not constrained:
        return _best_unconstrained(a, b, domain, theta, max_elems)
    u, v = _normalise(a, b, domain, theta)
    bsz, n = u.shape
    p_out = torch.zeros(bsz, dtype=torch.long, device=u.device)
    q_out = torch.zeros_like(p_out)
    found = torch.zeros(bsz, dtype=torch.bool, device=u.device)
    bound = _pair_bound(u, v, max_elems)
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
    torchattacks fall back to); all n^2 pairs, in chunks of rows.

    Rows are scaled by their largest |gradient| first, as in the constrained search: a positive
    factor per row leaves the argmax unchanged, and on a saturated softmax (the only case where
    this rule matters) the raw products underflow to 0, whose argmax would be the lowest pair."""
    tiny = torch.finfo(a.dtype).tiny
    a = a / a.abs().amax(1, keepdim=True).clamp_min(tiny)
    b = b / b.abs().amax(1, keepdim=True).clamp_min(tiny)
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
