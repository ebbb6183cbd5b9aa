"""Is the robustness real? Masking checks at equal budgets, each with its n and a 95% interval, and
the verdict they add up to. Never a verdict without its evidence.

The field's references: Carlini et al. 2019 ("On Evaluating Adversarial Robustness": an unbounded
attack must reach 100%, or the attack is broken; a black-box attack beating the white-box one at the
same budget is the sign of masking); Athalye et al. 2018 (shattered, stochastic and vanishing
gradients); AutoAttack's flags (zero gradients, randomized outputs); Pintor et al. 2022 ("Indicators
of Attack Failure"). Each check compares two attacks *on the same input at the same budget*:

Masking (which gradient it is about in brackets):
- vanishing gradients [deployed softmax]: inputs whose softmax input gradient is exactly 0 in float32;
- randomized outputs [all]: inputs whose logits differ between two identical calls (EOT is the remedy);
- another output restores JSMA [deployed softmax]: attacks (input, target) that JSMA on softmax(z/T)
  or the logits wins within the same Upsilon where JSMA-F loses;
- JSMA-F transfer [deployed softmax]: the baseline's JSMA-F examples (same Upsilon) reaching the
  target here where JSMA-F on this model does not;
- transfer beats white-box [logits]: a transfer example that reaches the target here with an L2
  distortion below CW-L2's own minimal one for that input (by a margin, `L2_MARGIN`), or where CW-L2
  found none;
- gradient-free beats white-box [logits]: the same for SimBA (no gradient at all; each pixel within
  +-epsilon, as its reference).
Attack failure (the attack, not the model):
- unbounded attack below 100%: CW-L2 has no distortion bound, so it must reach every target; any miss
  fires it, and its misses then count for no transfer or gradient-free check (only the inputs it reached);
- white-box optimisation unfinished: CW-L2 attacks whose last binary step ran out of iterations with the
  loss still falling (abort_early's own test), above the threshold with its interval: their distances are
  over-estimates, so the gradient-free and transfer comparisons are not to be read as masking.

A check fires when the 95% Clopper-Pearson interval of its share lies above its threshold; it is
clear when the interval lies below; otherwise it is undecided, with the n that would decide it at the
observed share. Verdicts: "masked" (a masking check fired: which gradient, which evidence);
"inconclusive" (the attack failed, or n too small, or nothing measured: what to run); "no sign of
masking" (every measured check clear, at least one of them gradient-free or transfer). "No sign of
masking" is not "robust": it says the gradients did not hide anything these attacks could find.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from scipy.stats import binomtest

SHARE = 0.20  # a check fires when at least this share of inputs (or attacks) shows the sign, interval and all
L2_MARGIN = 1.25  # a transfer or gradient-free example beats CW-L2 when its L2 is this many times smaller
CONFIDENCE = 0.95
MAX_N = 5000

UNFINISHED = "white-box optimisation unfinished"
L2_PAIR_CHECKS = ("transfer beats white-box", "gradient-free beats white-box")  # compared with CW-L2's distances
SOFTMAX = "the deployed softmax's gradient"
LOGITS = "the logits' gradient"
EVERY = "every gradient (a randomized model)"


@lru_cache(maxsize=4096)
def interval(k: int, n: int) -> tuple[float, float]:
    """95% Clopper-Pearson interval of k successes in n (exact: no normal approximation at n = 10)."""
    if n == 0:
        return 0.0, 1.0
    ci = binomtest(k, n).proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return float(ci.low), float(ci.high)


def n_to_decide(share: float, threshold: float) -> int | None:
    """The smallest n at which the observed share's interval clears `threshold` (None: not within MAX_N)."""
    if share == threshold:  # on the threshold itself no n decides: the share just below it is what more inputs need
        share = threshold - 1e-9
    n = 1
    while n <= MAX_N:
        low, high = interval(round(share * n), n)
        if (share > threshold and low > threshold) or (share < threshold and high < threshold):
            return n
        n = n + 1 if n < 500 else math.ceil(n * 1.02)
    return None


@dataclass
class Check:
    name: str
    fired: bool
    value: float | None  # the measured share the check is about
    threshold: str  # in words
    evidence: str  # the numbers behind it, in words
    status: str = "clear"  # fired | clear | undecided
    kind: str = "masking"  # masking | attack failure
    gradient: str = ""  # which gradient a masking check is about
    n: int = 0
    low: float | None = None
    high: float | None = None
    n_needed: int | None = None  # undecided: the n that would decide it at the observed share


@dataclass
class Evidence:
    """What the checks read, as pairs of one attack beside another on the same input and target at the
    same budget. Shares are kept beside them for reports and figures."""

    model: str
    whitebox: str = "JSMA-F"  # the attack the robustness is claimed against
    whitebox_success: float = 0.0  # its success at the run's Upsilon
    upsilon: float = 0.145
    zero_gradients: tuple[int, int] | None = None  # (inputs with an all-zero softmax gradient, inputs measured)
    zero_logit_gradients: tuple[int, int] | None = None  # (inputs with an all-zero gradient of every logit, inputs)
    randomized: tuple[int, int] | None = None  # (inputs whose logits differ between two calls, inputs)
    # JSMA at the same Upsilon: name -> [(that attack won, JSMA-F won)] per (input, target)
    jsma_pairs: dict[str, list[tuple[bool, bool]]] = field(default_factory=dict)
    # L2 of an example that reaches the target (None: none found): name -> [(that attack's, CW-L2's minimal)]
    l2_pairs: dict[str, list[tuple[float | None, float | None]]] = field(default_factory=dict)
    gradient_free: list[str] = field(default_factory=list)  # which of l2_pairs use no gradient at all
    cw_l2: list[float | None] = field(default_factory=list)  # every CW-L2 attack on this model: its L2 or None
    cw_settings: dict[str, Any] = field(default_factory=dict)
    # (CW-L2 attacks whose last binary step ran out of iterations with the loss still falling, attacks)
    cw_unconverged: tuple[int, int] | None = None
    # shares, for reports, figures and the dashboard
    zero_gradient_share: float | None = None
    other_outputs: dict[str, float] = field(default_factory=dict)
    transfer: dict[str, float] = field(default_factory=dict)
    blackbox: dict[str, float] = field(default_factory=dict)
    blackbox_queries: dict[str, float | None] = field(default_factory=dict)
    jsma_budget: dict[str, float] = field(default_factory=dict)  # Upsilon -> success
    cw_budget: dict[str, float] = field(default_factory=dict)  # L2 bound -> success


@dataclass
class Verdict:
    model: str
    verdict: str  # "masked" | "no sign of masking" | "inconclusive"
    text: str
    checks: list[Check]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pct(v: float) -> str:
    return f"{100 * v:.0f}%"


def _share_check(name: str, k: int, n: int, threshold: float, words: str, evidence: str, *, kind: str = "masking",
                 gradient: str = "", fire_above: bool = True, every: bool = False) -> Check:
    """A check on k of n: fires when the interval lies above `threshold` (below it, with
    fire_above=False), clear when on the other side, undecided when it straddles it. With `every`, any
    of the n that misses fires it (an unbounded attack must reach every target: Carlini et al. 2019)."""
    low, high = interval(k, n)
    share = k / n if n else 0.0
    if every:
        status = "fired" if k < n else "clear"
    elif fire_above:
        status = "fired" if low > threshold else "clear" if high < threshold else "undecided"
    else:
        status = "fired" if high < threshold else "clear" if low > threshold else "undecided"
    needed = n_to_decide(share, threshold) if status == "undecided" else None
    return Check(name=name, fired=status == "fired", value=share, threshold=words,
                 evidence=f"{evidence}: {k}/{n} = {_pct(share)} (95% CI {_pct(low)}-{_pct(high)})",
                 status=status, kind=kind, gradient=gradient, n=n, low=low, high=high, n_needed=needed)


def _beats(pairs: list[tuple[float | None, float | None]], whitebox_failed: bool) -> tuple[int, int]:
    """(inputs where our example reaches the target with an L2 below the white-box's minimal one by the
    margin, or where the white-box found none; inputs compared). When the unbounded white-box attack
    failed, its misses say that *it* failed, not that gradients are masked: those inputs are left out
    (the verdict is then "inconclusive" unless another sign of masking fired)."""
    if whitebox_failed:
        pairs = [(a, w) for a, w in pairs if w is not None]
    return sum(1 for a, w in pairs if a is not None and (w is None or a * L2_MARGIN < w)), len(pairs)


def run_checks(e: Evidence) -> list[Check]:
    checks: list[Check] = []
    # (name, (k, n), the sign in words, the evidence in words, the gradient it is about): shares of inputs
    per_input = (
        ("vanishing gradients", e.zero_gradients, "inputs with an exactly zero deployed-softmax input gradient",
         "inputs whose softmax input gradient is exactly 0 in float32", SOFTMAX),
        ("vanishing logit gradients", e.zero_logit_gradients,
         "inputs with an exactly zero input gradient of every logit",
         "inputs whose logits' input gradient is exactly 0 (shattered gradients, e.g. a quantised input: BPDA is "
         "the remedy)", LOGITS),
        ("randomized outputs", e.randomized, "inputs whose logits differ between two identical calls",
         "inputs with different logits on a second call (stochastic gradients: attack the expectation, EOT)", EVERY),
    )
    for name, counted, sign, words, gradient in per_input:
        if counted is not None and counted[1]:
            checks.append(_share_check(name, counted[0], counted[1], SHARE, f"{sign} > {_pct(SHARE)}", words,
                                       gradient=gradient))
    up = f"Upsilon {100 * e.upsilon:g}%"
    for name, pairs in e.jsma_pairs.items():
        if not pairs:
            continue
        k = sum(1 for other, f in pairs if other and not f)
        checks.append(_share_check(f"{name} beats JSMA-F", k, len(pairs), SHARE,
                                   f"attacks {name} wins and JSMA-F loses, both within {up}, > {_pct(SHARE)}",
                                   f"attacks won by {name} and lost by JSMA-F, both at {up}", gradient=SOFTMAX))
    cw_failed = any(w is None for w in e.cw_l2)
    for name, pairs in e.l2_pairs.items():
        k, n = _beats(pairs, cw_failed)
        if not n:
            continue
        kind = "gradient-free" if name in e.gradient_free else "transfer"
        checks.append(_share_check(
            f"{kind} beats white-box: {name}", k, n, SHARE,
            f"inputs where {name} reaches the target with an L2 {L2_MARGIN:g}x below CW-L2's minimal one "
            f"(or CW-L2 found none) > {_pct(SHARE)}",
            f"inputs where {name} found a smaller example than CW-L2 on the logits", gradient=LOGITS))
    if e.cw_l2:
        ok = sum(1 for w in e.cw_l2 if w is not None)
        settings = ", ".join(f"{k} {v:g}" for k, v in e.cw_settings.items()
                             if k in ("binary_search_steps", "max_iterations", "initial_const", "learning_rate",
                                      "escalations"))
        checks.append(_share_check("unbounded attack below 100%", ok, len(e.cw_l2), 1.0,
                                   "CW-L2 has no distortion bound: it must reach every target; any miss is a failure "
                                   "of the attack (budget or bug), its misses are then not counted against it",
                                   "attacks CW-L2 on the logits reached the target on"
                                   + (f" ({settings})" if settings else ""),
                                   kind="attack failure", fire_above=False, every=True))
    if e.cw_unconverged is not None and e.cw_unconverged[1]:
        k, n = e.cw_unconverged
        checks.append(_share_check(UNFINISHED, k, n, SHARE,
                                   f"CW-L2 attacks whose last binary step ran out of iterations with the loss still "
                                   f"falling > {_pct(SHARE)}: their distances over-estimate the minimal ones, so a "
                                   "gradient-free or transfer example beating them says little",
                                   "CW-L2 attacks cut at max_iterations with the loss still falling (Pintor et al. "
                                   "2022: incomplete optimisation)", kind="attack failure"))
    return checks


def _line(c: Check) -> str:
    return f"{c.name} ({c.evidence})"


def judge(e: Evidence) -> Verdict:
    checks = run_checks(e)
    masking = [c for c in checks if c.kind == "masking"]
    fired = [c for c in masking if c.fired]
    if any(c.name == UNFINISHED and c.fired for c in checks):
        # CW-L2's distances are over-estimates: an example smaller than them is no evidence of masking
        fired = [c for c in fired if not c.name.startswith(L2_PAIR_CHECKS)]
    if fired:
        gradients = sorted({c.gradient for c in fired})
        return Verdict(e.model, "masked", f"masked: {' and '.join(gradients)}; " + "; ".join(_line(c) for c in fired),
                       checks)
    failed = [c for c in checks if c.kind == "attack failure" and c.fired]
    if failed:
        return Verdict(e.model, "inconclusive", "inconclusive: the attack failed, not necessarily the model: "
                       + "; ".join(_line(c) for c in failed) + ". Raise attack.cw_l2.binary_search_steps and "
                       "max_iterations (or initial_const) until CW-L2 reaches every target with its loss settled, "
                       "then judge again", checks)
    if not masking:
        return Verdict(e.model, "inconclusive", "inconclusive (not measured): no masking check could be measured; "
                       "run the attacks with `attack --checks` (attack.methods with cw_l2, attack.checks with "
                       "transfer and blackbox)", checks)
    undecided = [c for c in masking if c.status == "undecided"]
    if undecided:
        needs = [f"{c.name}: n {c.n}, {c.n_needed or 'more than ' + str(MAX_N)} would decide it" for c in undecided]
        return Verdict(e.model, "inconclusive", "inconclusive (n too small): " + "; ".join(needs)
                       + " (attack.samples / attack.check_samples)", checks)
    if not any(c.gradient == LOGITS for c in masking):
        return Verdict(e.model, "inconclusive", "inconclusive (not measured): the gradient checks are clear but no "
                       "gradient-free or transfer attack was compared with CW-L2 at the same budget; add cw_l2 to "
                       "attack.methods and transfer or blackbox to attack.checks", checks)
    return Verdict(e.model, "no sign of masking", f"no sign of masking: all {len(masking)} masking checks clear at "
                   f"equal budgets (JSMA-F {_pct(e.whitebox_success)}). Not a claim of robustness: the gradients "
                   "hid nothing these attacks could find", checks)
