"""Is the robustness real? The warning signs of masked gradients (Carlini et al. 2019, "On
Evaluating Adversarial Robustness"; Athalye et al. 2018, "Obfuscated Gradients"), each a measured
number with a threshold, and the verdict they add up to. Never a verdict without its evidence.

The white-box attack under test is the one the defence is claimed to resist: JSMA on the deployed
softmax (JSMA-F, the paper's). The checks:
- vanishing gradients: share of inputs whose deployed-softmax input gradient is exactly 0 in float32;
- another output restores the attack: JSMA on softmax(z/T) or the logits, or CW-L2's margin on the
  logits, succeeds far more often than JSMA-F;
- transfer beats white-box: examples made on the undistilled baseline reach the target on this
  model more often than JSMA-F does;
- gradient-free beats white-box: SimBA, which uses no gradient, succeeds more often;
- the unbounded white-box attack stays below 100%: JSMA-F with Upsilon = 100%;
- success does not rise with the budget: JSMA-F's success from Upsilon 2.5% to 100% stays flat.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Thresholds: a gap of this many points (as a share) between two attacks is a finding, not noise
# on a few hundred attacks.
GAP = 0.10
OUTPUT_GAP = 0.30
ZERO_GRADIENTS = 0.10
UNBOUNDED = 0.95
FLAT = 0.05
ROBUST_BELOW = 0.50  # a white-box success under this reads as robustness that needs explaining


@dataclass
class Evidence:
    model: str
    whitebox: str  # the attack the robustness is claimed against
    whitebox_success: float
    zero_gradient_share: float | None = None
    other_outputs: dict[str, float] = field(default_factory=dict)  # attack name -> success
    transfer: dict[str, float] = field(default_factory=dict)  # "from baseline, CW-L2 kappa=40" -> success here
    blackbox: dict[str, float] = field(default_factory=dict)  # "SimBA" -> success
    blackbox_queries: dict[str, float | None] = field(default_factory=dict)  # mean queries per success
    jsma_budget: dict[str, float] = field(default_factory=dict)  # Upsilon -> success
    cw_budget: dict[str, float] = field(default_factory=dict)  # L2 bound -> success


@dataclass
class Check:
    name: str
    fired: bool
    value: float | None  # the measured number the check is about
    threshold: str  # in words
    evidence: str  # the numbers behind it, in words


@dataclass
class Verdict:
    model: str
    verdict: str  # "masked" | "no sign of masking" | "mixed" | "not measured"
    text: str
    checks: list[Check]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _best(d: dict[str, float]) -> tuple[str, float] | None:
    return max(d.items(), key=lambda kv: kv[1]) if d else None


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def run_checks(e: Evidence) -> list[Check]:
    wb, name = e.whitebox_success, e.whitebox
    checks = []
    if e.zero_gradient_share is not None:
        checks.append(Check("vanishing gradients", e.zero_gradient_share >= ZERO_GRADIENTS, e.zero_gradient_share,
                            f"share of inputs with an all-zero deployed-softmax gradient >= {_pct(ZERO_GRADIENTS)}",
                            f"{_pct(e.zero_gradient_share)} of inputs have an exactly zero input gradient"))
    if (best := _best(e.other_outputs)) is not None:
        checks.append(Check("another output restores the attack", best[1] - wb >= OUTPUT_GAP, best[1] - wb,
                            f"best other attacked output beats {name} by >= {100 * OUTPUT_GAP:.0f} points",
                            f"{best[0]} {_pct(best[1])} vs {name} {_pct(wb)}"))
    if (best := _best(e.transfer)) is not None:
        checks.append(Check("transfer beats white-box", best[1] - wb >= GAP, best[1] - wb,
                            f"a transfer attack beats {name} by >= {100 * GAP:.0f} points",
                            f"{best[0]} {_pct(best[1])} vs {name} {_pct(wb)}"))
    if (best := _best(e.blackbox)) is not None:
        q = e.blackbox_queries.get(best[0])
        checks.append(Check("gradient-free beats white-box", best[1] - wb >= GAP, best[1] - wb,
                            f"a gradient-free attack beats {name} by >= {100 * GAP:.0f} points",
                            f"{best[0]} {_pct(best[1])}" + (f" ({q:.0f} queries per success)" if q else "")
                            + f" vs {name} {_pct(wb)}"))
    if e.jsma_budget:
        top = e.jsma_budget.get("1", max(e.jsma_budget.values()))
        checks.append(Check("unbounded attack below 100%", top < UNBOUNDED, top,
                            f"{name} with Upsilon = 100% succeeds < {_pct(UNBOUNDED)}",
                            f"{name} at Upsilon 100%: {_pct(top)}"))
        low = e.jsma_budget[min(e.jsma_budget, key=float)]
        checks.append(Check("success flat in the budget", top - low < FLAT and top < UNBOUNDED, top - low,
                            f"{name}'s success rises < {100 * FLAT:.0f} points from the smallest budget to 100% "
                            "while below 100%",
                            f"{_pct(low)} at Upsilon {float(min(e.jsma_budget, key=float)) * 100:g}% -> {_pct(top)} "
                            "at 100%"))
    return checks


def judge(e: Evidence) -> Verdict:
    checks = run_checks(e)
    if not checks:
        return Verdict(e.model, "not measured", "no check could be measured for this model", checks)
    fired = [c for c in checks if c.fired]
    numbers = "; ".join(c.evidence for c in fired)
    if not fired:
        return Verdict(e.model, "no sign of masking", f"no sign of masking: none of {len(checks)} checks fired "
                       f"({e.whitebox} {_pct(e.whitebox_success)})", checks)
    names = ", ".join(c.name for c in fired)
    if e.whitebox_success < ROBUST_BELOW:
        return Verdict(e.model, "masked", f"robustness to {e.whitebox} ({_pct(e.whitebox_success)} success) is masked "
                       f"gradients: {len(fired)} of {len(checks)} checks fired ({names})", checks)
    return Verdict(e.model, "mixed", f"{e.whitebox} succeeds {_pct(e.whitebox_success)}, so there is little "
                   f"robustness to explain, yet {names} fired ({numbers})", checks)
