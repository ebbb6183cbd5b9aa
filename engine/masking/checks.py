"""Is the robustness real? Masking checks at equal budgets, each with its n and a 95% interval, and
the verdict they add up to, with the remedy that matches what fired. Never a verdict without its evidence.

The field's references: Carlini et al. 2019 ("On Evaluating Adversarial Robustness": an unbounded
attack must reach 100%, or the attack is broken; a black-box attack beating the white-box one at the
same budget is the sign of masking); Athalye et al. 2018 (shattered, stochastic and vanishing
gradients; BPDA and EOT); Tramer et al. 2020 (adaptive attacks); AutoAttack's flags; Pintor et al.
2022 ("Indicators of Attack Failure"). Each check is built from a principle that covers a class of
mechanisms, not from the control that needed it:

Masking (which gradient it is about in brackets):
- vanishing gradients [deployed softmax]: inputs whose softmax input gradient is exactly 0 in float32;
- vanishing logit gradients [logits]: inputs whose every logit has an exactly zero input gradient;
- gradient honesty [logits]: inputs whose autograd directional derivatives disagree with finite
  differences of the forward function at an attack's scale (engine/masking/honesty.py): a custom or
  straight-through backward, a detached part of the input, quantisation, a discontinuous activation;
- randomized decisions [all]: inputs whose decision, on the input or on its white-box adversarial
  example, changes between calls (randomness that an attack sees; EOT is the remedy);
- another output restores JSMA [deployed softmax]: inputs on which JSMA on softmax(z/T) or the logits
  wins more of the targets than JSMA-F, at the same Upsilon;
- JSMA-F transfer [deployed softmax]: the same for the transfer source's JSMA-F examples;
- beats white-box [logits; every gradient for EOT]: inputs where an attack that does not rely on this
  model's backward (transfer, gradient-free SimBA, decision-based HopSkipJump, CW-L2 on estimated
  gradients, EOT) reaches the target with an L2 `L2_MARGIN` x below CW-L2's minimal one, or reaches
  a target that CW-L2 missed after its misses were attacked again with a larger budget.
Paired comparisons count inputs in both directions; two JSMA attacks also need the exact sign test to agree.
Attack failure (the attack, not the model):
- white-box missed what no attack reached: CW-L2 has no distortion bound, so a target that no attack
  reached is a failure of the attacks' budget; a miss that another attack reached is evidence about
  the gradient instead (above), once CW-L2 was given more budget on it;
- white-box optimisation unfinished: CW-L2 attacks whose last binary step ran out of iterations with
  the loss still falling, or ended with the loss rising (an oscillating optimiser), after the escalations.

A share check fires when the 95% Clopper-Pearson interval of its share lies above 20%; it is clear when
the interval lies below; otherwise undecided, with the n from which it stays decided at the observed
share. Verdicts: "masked" (a masking check fired: which gradient, which evidence, and what the matching
remedy reached); "inconclusive" (the attack failed, or n too small, or nothing measured: what to run);
"no sign of masking" (every measured check clear, at least one of them comparing an attack that does
not use this model's gradient). "No sign of masking" is not "robust".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from engine.masking.statistics import MAX_N, SIGN_ALPHA, interval, n_to_decide, sign_test
from engine.record.events import CheckRow

SHARE = 0.20  # a check fires when at least this share of inputs shows the sign, interval and all
L2_MARGIN = 1.25  # another attack's example beats CW-L2 when its L2 is this many times smaller

UNFINISHED = "white-box optimisation unfinished"
MISSED = "white-box missed what no attack reached"
BEATS = "beats white-box"
SOFTMAX = "the deployed softmax's gradient"
LOGITS = "the logits' gradient"
EVERY = "every gradient (a randomized model)"

# the comparators of CW-L2, by kind, and the gradient their win is about
TRANSFER, GRADIENT_FREE, DECISION, ESTIMATED, EOT = ("transfer", "gradient-free", "decision-based",
                                                     "estimated-gradient", "EOT")
KIND_GRADIENT = {TRANSFER: LOGITS, GRADIENT_FREE: LOGITS, DECISION: LOGITS, ESTIMATED: LOGITS, EOT: EVERY}
# the remedy that matches each masked gradient, and the attack (a key of Evidence.remedies) that runs it
REMEDY_ATTACK = {SOFTMAX: "CW-L2 on the logits", LOGITS: "CW-L2 on estimated gradients", EVERY: "CW-L2 with EOT"}


# One type for a check, here and in the record: the row a `verdict` event and summary.json carry is the
# check itself (engine/record/events.py, torch-free for the dashboard), not a copy made from it.
Check = CheckRow


@dataclass
class Evidence:
    """What the checks read. Per-input facts, and pairs of one attack beside another on the same input
    and target at the same budget; shares beside them for reports and figures."""

    model: str
    whitebox: str = "JSMA-F"  # the attack the robustness is claimed against
    whitebox_success: float = 0.0  # its success at the run's Upsilon
    upsilon: float = 0.145
    zero_gradients: tuple[int, int] | None = None  # (inputs with an all-zero softmax gradient, inputs measured)
    zero_logit_gradients: tuple[int, int] | None = None  # (inputs with an all-zero gradient of every logit, inputs)
    # (inputs whose backward disagrees with finite differences of the forward at an attack's step, inputs)
    honesty: tuple[int, int] | None = None
    honesty_every_step: int | None = None  # of those, disagreeing at every step (a backward of another function)
    honesty_errors: dict[str, float] = field(default_factory=dict)  # median relative error by step size
    # (inputs whose decision on the input or its white-box example changed between calls, inputs)
    randomized: tuple[int, int] | None = None
    randomized_calls: int = 0  # calls compared (2 and bit for bit: measured by a version before decisions)
    # JSMA at the same Upsilon: name -> [(input, that attack won, JSMA-F won)] per (input, target)
    jsma_pairs: dict[str, list[tuple[int, bool, bool]]] = field(default_factory=dict)
    # L2 of an example that reaches the target (None: none found), per input, beside CW-L2's list
    l2_pairs: dict[str, list[float | None]] = field(default_factory=dict)
    comparator_kinds: dict[str, str] = field(default_factory=dict)  # l2_pairs name -> TRANSFER, GRADIENT_FREE, ...
    l2_compared: dict[str, list[int]] = field(default_factory=dict)  # a comparator made for some inputs only: which
    cw_l2: list[float | None] = field(default_factory=list)  # CW-L2 per input: its minimal L2 or None
    cw_settings: dict[str, Any] = field(default_factory=dict)
    cw_escalated: bool = False  # CW-L2's misses were attacked again with a larger budget (escalations > 0)
    # (CW-L2 attacks still cut with the loss falling, or ending with it rising, after the escalations, attacks)
    cw_unconverged: tuple[int, int] | None = None
    cw_unfinished: list[bool] = field(default_factory=list)  # per input of cw_l2 (empty: not known)
    settled: dict[str, int] = field(default_factory=dict)  # CW-L2 attacked again where beaten: attacks, improved
    # the remedies run: attack name -> per input its L2 (None: missed), on CW-L2's inputs and targets
    remedies: dict[str, list[float | None]] = field(default_factory=dict)
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
    remedy: str = ""  # masked: what the matching remedy reached, in words

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pct(v: float) -> str:
    return f"{100 * v:.0f}%"


def _ci(k: int, n: int) -> str:
    low, high = interval(k, n)
    return f"{k}/{n} = {_pct(k / n if n else 0.0)} (95% CI {_pct(low)}-{_pct(high)})"


def _share_check(name: str, k: int, n: int, threshold: float, words: str, evidence: str, short: str, *,
                 kind: str = "masking", gradient: str = "", every: bool = False) -> Check:
    """A check on k of n inputs: fires when the interval lies above `threshold`, clear when below,
    undecided when it straddles it. With `every`, any of the n fires it."""
    low, high = interval(k, n)
    share = k / n if n else 0.0
    if every:
        status = "fired" if k > 0 else "clear"
    else:
        status = "fired" if low > threshold else "clear" if high < threshold else "undecided"
    return Check(name=name, fired=status == "fired", value=share, threshold=words, evidence=f"{evidence}: {_ci(k, n)}",
                 status=status, kind=kind, gradient=gradient, n=n, low=low, high=high,
                 n_needed=n_to_decide(share, threshold) if status == "undecided" else None, short=short)


def _paired_check(name: str, wins: int, losses: int, n: int, words: str, evidence: str, short: str,
                  gradient: str, symmetric: bool = True) -> Check:
    """Inputs where one attack beats the other (`wins`) and the other way round (`losses`), of n. Two
    attacks of one kind (JSMA on two outputs, at one Upsilon), `symmetric`: fires when the interval of
    wins/n lies above SHARE and the exact sign test says the two directions differ; clear when that interval
    lies below SHARE or the sign test says the other way dominates. Against CW-L2, the attack that minimises
    L2, the other way is what an honest model shows by design (CW-L2 wins nearly every input), so only the
    share of wins decides, a win needing the L2_MARGIN; the other way is reported beside it."""
    low, high = interval(wins, n)
    p = sign_test(wins, losses)
    one_way = not symmetric or (wins > losses and p < SIGN_ALPHA)
    if low > SHARE and one_way:
        status = "fired"
    elif high < SHARE or (symmetric and losses > wins and p < SIGN_ALPHA):
        status = "clear"
    else:
        status = "undecided"
    needed = None
    if status == "undecided":
        needed = n_to_decide(wins / n, SHARE) if not (low > SHARE or high < SHARE) else _n_for_sign(wins, losses, n)
    sign = f" (exact sign test p = {p:.2g})" if symmetric else ""
    return Check(name=name, fired=status == "fired", value=wins / n if n else 0.0, threshold=words,
                 evidence=f"{evidence}: {_ci(wins, n)}; the other way {losses}/{n}{sign}",
                 status=status, kind="masking", gradient=gradient, n=n, low=low, high=high, n_needed=needed,
                 short=short)


def _n_for_sign(wins: int, losses: int, n: int) -> int | None:
    """The n at which the sign test would decide at the observed proportions (None: it never would)."""
    if wins == losses:
        return None
    for scale in range(2, MAX_N // max(n, 1) + 1):
        if sign_test(wins * scale, losses * scale) < SIGN_ALPHA:
            return n * scale
    return None


def _jsma_check(name: str, rows: list[tuple[int, bool, bool]], up: str) -> Check:
    """One unit per input: an input counts for the other attack when it wins more of the input's targets
    than JSMA-F does (won where JSMA-F lost, against lost where JSMA-F won), and the other way round."""
    by_input: dict[int, int] = {}
    for i, other, f in rows:
        by_input[i] = by_input.get(i, 0) + (other and not f) - (f and not other)
    wins = sum(1 for d in by_input.values() if d > 0)
    losses = sum(1 for d in by_input.values() if d < 0)
    return _paired_check(f"{name} beats JSMA-F", wins, losses, len(by_input),
                         f"inputs on which {name} wins more of the targets than JSMA-F, both within {up}, > "
                         f"{_pct(SHARE)}", f"inputs on which {name} won more targets than JSMA-F at {up}",
                         f"{name} wins where JSMA-F loses", SOFTMAX)


def _l2_outcomes(mine: list[float | None], cw: list[float | None], misses_count: bool,
                 compared: list[int] | None = None, unfinished: list[bool] | None = None) -> tuple[int, int, int]:
    """(inputs where this attack beats CW-L2, inputs where CW-L2 beats it, inputs compared). This attack
    beats CW-L2 with an L2 L2_MARGIN x smaller, or by reaching a target CW-L2 missed (only once CW-L2's
    misses were attacked again: `misses_count`; else those inputs are left out). An input whose CW-L2
    optimisation did not finish is left out too: its distance over-estimates the minimal one. `compared`:
    the inputs this attack was made for, when not all."""
    wins = losses = n = 0
    rows = range(len(cw)) if compared is None else compared
    for i in rows:
        a, w = mine[i], cw[i]
        if (w is None and not misses_count) or (w is not None and unfinished and unfinished[i]):
            continue
        n += 1
        if a is not None and (w is None or a * L2_MARGIN < w):
            wins += 1
        elif w is not None and (a is None or w * L2_MARGIN < a):
            losses += 1
    return wins, losses, n


def run_checks(e: Evidence) -> list[Check]:
    checks: list[Check] = []
    # (name, (k, n), the sign in words, the evidence in words, short reason, the gradient it is about)
    per_input = (
        ("vanishing gradients", e.zero_gradients, "inputs with an exactly zero deployed-softmax input gradient",
         "inputs whose softmax input gradient is exactly 0 in float32", "softmax gradient exactly 0", SOFTMAX),
        ("vanishing logit gradients", e.zero_logit_gradients,
         "inputs with an exactly zero input gradient of every logit",
         "inputs whose logits' input gradient is exactly 0 (shattered gradients, e.g. a quantised input)",
         "logit gradients exactly 0", LOGITS),
        ("gradient honesty", e.honesty,
         "inputs whose autograd directional derivatives disagree with finite differences of the forward",
         _honesty_words(e), "backward disagrees with forward", LOGITS),
        ("randomized decisions", e.randomized,
         "inputs whose decision (on the input or its white-box example) changes between calls",
         f"inputs whose decision changed over {e.randomized_calls} calls" if e.randomized_calls > 2 else
         "inputs with different logits on a second call (measured bit for bit by an older version)",
         "decisions change between calls", EVERY),
    )
    for name, counted, sign, words, short, gradient in per_input:
        if counted is not None and counted[1]:
            checks.append(_share_check(name, counted[0], counted[1], SHARE, f"{sign} > {_pct(SHARE)}", words, short,
                                       gradient=gradient))
    up = f"Upsilon {100 * e.upsilon:g}%"
    for name, rows in e.jsma_pairs.items():
        if rows:
            checks.append(_jsma_check(name, rows, up))
    misses_count = e.cw_escalated
    for name, mine in e.l2_pairs.items():
        if not e.cw_l2 or len(mine) != len(e.cw_l2):
            continue
        wins, losses, n = _l2_outcomes(mine, e.cw_l2, misses_count, e.l2_compared.get(name), e.cw_unfinished)
        if not n:
            continue
        kind = e.comparator_kinds.get(name, TRANSFER)
        checks.append(_paired_check(
            f"{kind} {BEATS}: {name}", wins, losses, n,
            f"inputs where {name} reaches the target with an L2 {L2_MARGIN:g}x below CW-L2's minimal one, or "
            f"reaches one CW-L2 missed, > {_pct(SHARE)}",
            f"inputs where {name} found a smaller example than CW-L2, or one it missed", f"{name} beats CW-L2",
            KIND_GRADIENT[kind], symmetric=False))
    if e.cw_l2:
        reached_by_others = [any(v[i] is not None for v in e.l2_pairs.values() if len(v) == len(e.cw_l2))
                             for i in range(len(e.cw_l2))]
        unexplained = sum(1 for w, other in zip(e.cw_l2, reached_by_others, strict=True)
                          if w is None and (not other or not misses_count))
        settings = ", ".join(f"{k} {v:g}" for k, v in e.cw_settings.items()
                             if k in ("binary_search_steps", "max_iterations", "initial_const", "learning_rate",
                                      "escalations"))
        checks.append(_share_check(
            MISSED, unexplained, len(e.cw_l2), 0.0,
            "CW-L2 has no distortion bound: a target no attack reached is a failure of the attacks' budget (a miss "
            "that another attack reached counts as evidence about the gradient, once CW-L2 was attacked again)",
            "CW-L2 attacks that missed a target no other attack reached" + (f" ({settings})" if settings else ""),
            "a target no attack reached", kind="attack failure", every=True))
    if e.cw_unconverged is not None and e.cw_unconverged[1]:
        k, n = e.cw_unconverged
        checks.append(_share_check(
            UNFINISHED, k, n, SHARE,
            f"CW-L2 attacks whose last binary step ran out of iterations with the loss still falling, or ended with "
            f"it rising, > {_pct(SHARE)}: their distances over-estimate the minimal ones",
            "CW-L2 attacks unfinished after the escalations (Pintor et al. 2022: incomplete optimisation)",
            "CW-L2 optimisation unfinished", kind="attack failure"))
    return checks


def _honesty_words(e: Evidence) -> str:
    words = "inputs whose logits' autograd derivatives disagree with finite differences of the forward at an " \
            "attack's step (relative error > tolerance)"
    if e.honesty is not None and e.honesty_every_step is not None and e.honesty[0]:
        every = e.honesty_every_step
        words += (f"; {every} of them at every step down to float precision (a backward that describes another "
                  f"function), {e.honesty[0] - every} only at the attack's scale (a function discontinuous below "
                  f"the attack's step)")
    return words


def _line(c: Check) -> str:
    return f"{c.name} ({c.evidence})"


def _mean(values: list[float]) -> str:
    return f"{sum(values) / len(values):.2f}" if values else "–"


def _reached(l2: list[float | None]) -> str:
    hits = [v for v in l2 if v is not None]
    return f"{len(hits)}/{len(l2)} targets (mean L2 {_mean(hits)})"


def remedy_text(e: Evidence, gradients: list[str]) -> str:
    """What the remedy matching each masked gradient reached, beside CW-L2 through the model's own backward."""
    parts = []
    own = ""  # said once, after the remedies that ran beside it (two masked gradients repeated it)
    for g in gradients:
        attack = REMEDY_ATTACK[g]
        if g == SOFTMAX:
            if e.cw_l2:
                logits = f"{attack} reached {_reached(e.cw_l2)}"
                jsma = e.other_outputs.get("JSMA on the logits")
                parts.append(logits + (f", JSMA on the logits {_pct(jsma)} of its attacks" if jsma is not None else "")
                             + f" (JSMA-F on the deployed softmax: {_pct(e.whitebox_success)})")
            else:
                parts.append(f"{attack}: not run (add cw_l2 to attack.methods)")
        elif attack in e.remedies:
            own = f"through the model's own backward CW-L2 reached {_reached(e.cw_l2)}" if e.cw_l2 else ""
            parts.append(f"{attack} reached {_reached(e.remedies[attack])}")
        else:
            parts.append(f"{attack}: not run (attack.remedy is off, or no CW-L2 inputs to run it on)")
    return "; ".join([*parts, own] if own else parts)


def judge(e: Evidence) -> Verdict:
    checks = run_checks(e)
    masking = [c for c in checks if c.kind == "masking"]
    fired = [c for c in masking if c.fired]
    if any(c.name == UNFINISHED and c.fired for c in checks):
        # CW-L2's distances are over-estimates: an example smaller than them is no evidence of masking
        fired = [c for c in fired if BEATS not in c.name]
    if fired:
        gradients = sorted({c.gradient for c in fired})
        remedy = remedy_text(e, gradients)
        return Verdict(e.model, "masked", f"masked: {' and '.join(gradients)}; " + "; ".join(_line(c) for c in fired)
                       + f". Remedy: {remedy}", checks, remedy)
    failed = [c for c in checks if c.kind == "attack failure" and c.fired]
    if failed:
        advice = ("attack CW-L2's misses again with a larger budget (attack.cw_l2.escalations, now "
                  f"{e.cw_settings.get('escalations', 0):g})" if not e.cw_escalated else
                  "add the decision-based comparator (attack.checks: 'decision'), which starts from an input of the "
                  "target class and so reaches every target: a miss it reaches is evidence about the gradient, one "
                  "it cannot is the budget")
        if any(c.name == UNFINISHED for c in failed):
            advice += ("; for unfinished optimisation, lower attack.cw_l2.learning_rate (a rising loss) or raise "
                       "max_iterations (a loss still falling)")
        return Verdict(e.model, "inconclusive", "inconclusive: the attack failed, not necessarily the model: "
                       + "; ".join(_line(c) for c in failed) + f". To decide: {advice}, then judge again", checks)
    if not masking:
        return Verdict(e.model, "inconclusive", "inconclusive (not measured): no masking check could be measured; "
                       "run the attacks with `attack --checks` (attack.methods with cw_l2, attack.checks with "
                       "transfer and blackbox)", checks)
    undecided = [c for c in masking if c.status == "undecided"]
    if undecided:
        needs = [f"{c.name}: n {c.n}, {c.n_needed or 'more than ' + str(MAX_N)} would decide it" for c in undecided]
        return Verdict(e.model, "inconclusive", "inconclusive (n too small): " + "; ".join(needs)
                       + " (inputs: attack.check_samples, or attack.samples)", checks)
    if not any(BEATS in c.name for c in masking):
        return Verdict(e.model, "inconclusive", "inconclusive (not measured): the gradient checks are clear but no "
                       "attack that does without this model's gradient was compared with CW-L2 at the same budget; "
                       "add cw_l2 to attack.methods and transfer, blackbox or decision to attack.checks", checks)
    return Verdict(e.model, "no sign of masking", f"no sign of masking: all {len(masking)} masking checks clear at "
                   f"equal budgets (JSMA-F {_pct(e.whitebox_success)}). Not a claim of robustness: the gradients "
                   "hid nothing these attacks could find", checks)
