"""The numbers behind every check: exact intervals of a share, the exact sign test of paired
comparisons, and the n from which a check stays decided.

The unit is always the input: a check that counts nine JSMA targets of one input as nine independent
trials claims an n it does not have (at a true share of 20% such a check fires ~22% of the time
instead of 2.5%), so paired attacks are first reduced to one verdict per input."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.stats import beta, binomtest

CONFIDENCE = 0.95
SIGN_ALPHA = 0.05  # two-sided exact sign test on the discordant inputs of a paired comparison
MAX_N = 5000


@lru_cache(maxsize=4096)
def interval(k: int, n: int) -> tuple[float, float]:
    """95% Clopper-Pearson interval of k successes in n (exact: no normal approximation at n = 10)."""
    if n == 0:
        return 0.0, 1.0
    ci = binomtest(k, n).proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return float(ci.low), float(ci.high)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test (McNemar's exact test) of `wins` against `losses` among the discordant
    inputs: the p-value that the two directions are equally likely (1.0 when nothing is discordant)."""
    if wins + losses == 0:
        return 1.0
    return float(binomtest(wins, wins + losses, 0.5).pvalue)


def _bounds(share: float, ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clopper-Pearson bounds at the observed share for every n in `ns` (k = round(share n))."""
    k = np.round(share * ns)
    a = (1 - CONFIDENCE) / 2
    low = np.where(k > 0, beta.ppf(a, np.maximum(k, 1), ns - k + 1), 0.0)
    high = np.where(k < ns, beta.ppf(1 - a, k + 1, np.maximum(ns - k, 1)), 1.0)
    return low, high


@lru_cache(maxsize=1024)
def n_to_decide(share: float, threshold: float) -> int | None:
    """The n from which the observed share's interval lies on one side of `threshold` for every larger n
    (the first n that decides can be undone by rounding at the next one); None: not within MAX_N."""
    if share == threshold:  # on the threshold itself no n decides: the share just below it is what more inputs need
        share = threshold - 1e-9
    ns = np.arange(1, MAX_N + 1, dtype=np.float64)
    low, high = _bounds(share, ns)
    decided = low > threshold if share > threshold else high < threshold
    if not decided[-1]:
        return None
    undecided = np.flatnonzero(~decided)
    return 1 if not len(undecided) else int(undecided[-1]) + 2
