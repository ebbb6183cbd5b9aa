"""The report's "Is the robustness real?" section: per model (per T for a sweep) the verdict and
the checks that fired, with their numbers."""

from __future__ import annotations

from typing import Any

EXPLAIN = ("Each verdict comes from measured checks (Carlini et al. 2019; Athalye et al. 2018): exactly zero "
           "input gradients at the deployed softmax; another attacked output (softmax(z/T), the logits, CW-L2's "
           "margin) succeeding >= 30 points more than JSMA-F; a transfer attack from the undistilled baseline, or "
           "SimBA (no gradient at all, on the deployed log-scores), succeeding >= 10 points more; JSMA-F with "
           "Upsilon = 100% staying below 95%, and flat from Upsilon 2.5% to 100%. \"masked\": JSMA-F succeeds "
           "< 50% and at least one check fired; \"no sign of masking\": none fired.")


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _row(label: str, v: dict[str, Any]) -> str:
    ev = v["evidence"]
    other = max(ev["other_outputs"].values()) if ev.get("other_outputs") else None
    transfer = max(ev["transfer"].values()) if ev.get("transfer") else None
    simba = ev.get("blackbox", {}).get("SimBA")
    top = ev.get("jsma_budget", {}).get("1")
    fired = [c for c in v["checks"] if c["fired"]]
    why = "; ".join(f"{c['name']} ({c['evidence']})" for c in fired) or "none fired"
    return (f"| {label} | {_pct(ev['whitebox_success'])} | {_pct(ev.get('zero_gradient_share'))} | {_pct(other)} | "
            f"{_pct(transfer)} | {_pct(simba)} | {_pct(top)} | **{v['verdict']}** | {why} |")


HEADER = ["| model | JSMA-F | zero gradients | best other output | best transfer | SimBA | JSMA-F, Upsilon 100% | "
          "verdict | checks that fired |", "|---|---|---|---|---|---|---|---|---|"]


def verdict_section(rows: list[tuple[str, dict[str, Any] | None]]) -> list[str]:
    rows = [(k, v) for k, v in rows if v]
    if not rows:
        return []
    return ["## Is the robustness real?", "", EXPLAIN, "", *HEADER, *(_row(k, v) for k, v in rows), ""]


def transfer_lines(entry: dict[str, Any]) -> list[str]:
    """Transfer success vs kappa for one model (C&W VIII-D: 100% to the T = 100 network only at kappa ~ 40)."""
    verdict = entry.get("verdict")
    evidence = entry.get("evidence") or (verdict.get("evidence", {}) if isinstance(verdict, dict) else {})
    tr = entry.get("transfer") or evidence.get("transfer")
    if not tr:
        return []
    cells = ", ".join(f"{k.replace(' from the baseline', '')} {_pct(v)}" for k, v in tr.items())
    return [f"Transfer from the baseline to this model: {cells} (C&W: reaching 100% on the T = 100 MNIST model "
            "needs kappa ~ 40).", ""]
