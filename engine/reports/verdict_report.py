"""The report's "Is the robustness real?" section: per model (per T for a sweep) the verdict and
the checks that fired, with their numbers."""

from __future__ import annotations

from typing import Any

EXPLAIN = ("Each verdict comes from checks that compare two attacks on the same input and target at the same "
           "budget (Carlini et al. 2019; Athalye et al. 2018; Pintor et al. 2022), each with its n and a 95% "
           "Clopper-Pearson interval; a check fires only when its interval lies above 20%. Masking: exactly zero "
           "deployed-softmax gradients; logits that differ between two identical calls; another output (or the "
           "baseline's JSMA-F examples) winning where JSMA-F loses at the same Upsilon; a transfer or SimBA example "
           "with an L2 1.25x below CW-L2's minimal one for that input; exactly zero logit gradients. Attack failure: "
           "CW-L2, which has no distortion bound, missing any target. \"masked\": a masking check fired (which "
           "gradient is named); "
           "\"inconclusive\": the attack failed, n is too small (the n that would decide is given) or nothing was "
           "measured; \"no sign of masking\": every check clear. That is not a claim of robustness. "
           "See docs/verdict.md.")
# the checks of docs/verdict.md since gradient honesty (issue 28): said for verdicts judged by them
EXPLAIN_HONESTY = ("Each verdict comes from checks that compare two attacks on the same input and target at the same "
                   "budget, or a gradient with the function it differentiates (Carlini et al. 2019; Athalye et al. "
                   "2018; Tramer et al. 2020; Pintor et al. 2022), counted per input, each with its n and a 95% "
                   "Clopper-Pearson interval; a check fires only when its interval lies above 20%. Masking: exactly "
                   "zero deployed-softmax or logit gradients; a backward that disagrees with finite differences of "
                   "the forward at an attack's step (gradient honesty); decisions that change between calls; another "
                   "output or the transfer source's JSMA-F examples winning more targets than JSMA-F at the same "
                   "Upsilon (exact sign test); an attack that does without this model's backward (transfer, SimBA, "
                   "HopSkipJump, CW-L2 on estimated gradients) reaching a target with an L2 1.25x below CW-L2's, or "
                   "one CW-L2 missed after its escalations. Attack failure: a target no attack reached; CW-L2's "
                   "optimisation unfinished. \"masked\" names the gradient and what the matching remedy reached; "
                   "\"inconclusive\": the attack failed, n is too small or nothing was measured; \"no sign of "
                   "masking\" is not a claim of robustness. See docs/verdict.md.")


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _honesty(ev: dict[str, Any]) -> str:
    h = ev.get("honesty")
    return "–" if not h else f"{h[0]}/{h[1]}"


def _row(label: str, v: dict[str, Any], honesty: bool) -> str:
    ev = v["evidence"]
    other = max(ev["other_outputs"].values()) if ev.get("other_outputs") else None
    transfer = max(ev["transfer"].values()) if ev.get("transfer") else None
    simba = ev.get("blackbox", {}).get("SimBA")
    top = ev.get("jsma_budget", {}).get("1")  # measured only with attack.checks "budget"
    fired = [c for c in v["checks"] if c["fired"] or c.get("status") == "undecided"]
    why = "; ".join(f"{c['name']}{' (undecided)' if c.get('status') == 'undecided' else ''}: {c['evidence']}"
                    for c in fired) or "all clear"
    if not honesty:
        return (f"| {label} | {_pct(ev['whitebox_success'])} | {_pct(ev.get('zero_gradient_share'))} | {_pct(other)} | "
                f"{_pct(transfer)} | {_pct(simba)} | {_pct(top)} | **{v['verdict']}** | {why} |")
    remedy = v.get("remedy") or "–"
    return (f"| {label} | {_pct(ev['whitebox_success'])} | {_pct(ev.get('zero_gradient_share'))} | {_honesty(ev)} | "
            f"{_pct(other)} | {_pct(transfer)} | {_pct(simba)} | {_pct(top)} | **{v['verdict']}** | {why} | {remedy} |")


HEADER = ["| model | JSMA-F | zero gradients | best other output | best transfer | SimBA | JSMA-F, Upsilon 100% | "
          "verdict | checks that fired or are undecided |", "|---|---|---|---|---|---|---|---|---|"]
# with gradient honesty: the inputs whose backward disagrees with the forward, and the remedy's result
HEADER_HONESTY = ["| model | JSMA-F | zero gradients | backward ≠ forward (inputs) | best other output | "
                  "best transfer | SimBA | JSMA-F, Upsilon 100% | verdict | checks that fired or are undecided | "
                  "remedy |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]


def verdict_section(rows: list[tuple[str, dict[str, Any] | None]]) -> list[str]:
    rows = [(k, v) for k, v in rows if v]
    if not rows:
        return []
    old = [k for k, v in rows if any(not c.get("status") for c in v["checks"])]  # "" or none: the earlier rules
    which = "All the verdicts below" if len(old) == len(rows) else f"The verdicts of {', '.join(old)}"
    note = ([f"{which} were judged by the earlier rules (attacks compared at unequal budgets, "
             "no intervals, \"mixed\" and \"not measured\"), which docs/verdict.md replaces: run "
             "`defdistill-engine verdict` on the run directories to judge them again.", ""] if old else [])
    honesty = any(v["evidence"].get("honesty") for _k, v in rows)  # judged by the checks of issue 28
    return ["## Is the robustness real?", "", EXPLAIN_HONESTY if honesty else EXPLAIN, "", *note,
            *(HEADER_HONESTY if honesty else HEADER), *(_row(k, v, honesty) for k, v in rows), ""]


def transfer_lines(tr: dict[str, float] | None) -> list[str]:
    """Transfer success vs kappa for one model (C&W VIII-D: 100% to the T = 100 network only at kappa ~ 40)."""
    if not tr:
        return []
    cells = ", ".join(f"{k.replace(' from the baseline', '')} {_pct(v)}" for k, v in tr.items())
    return [f"Transfer from the baseline to this model: {cells} (C&W: reaching 100% on the T = 100 MNIST model "
            "needs kappa ~ 40).", ""]
