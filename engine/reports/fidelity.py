"""Fidelity to the paper: our JSMA-F success per T beside the paper's, each point marked within
+-10 points or not (the seed spread widens the band where there are seeds), and for the points
outside the band the measurements that explain them, with a figure.

The explanations are measured, never assumed: per T, the share of held-out inputs whose deployed
softmax is saturated (max probability exactly 1.0 in float32, where JSMA-F finds no qualifying
pair), the student's mean |logit| against T x the baseline's, and, where a sweep of another length
is given (`compare`: the quick profile's 5 epochs against the full 50), success at each T against
training length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.deployment import label as temperature_label
from engine.paper import SUCCESS_VS_T, paper_key
from engine.sweeps.result import SweepResult

BAND = 10.0  # points


def points(r: SweepResult) -> list[dict[str, Any]]:
    """Per T: paper, ours (mean and spread), whether within the band, and the measured explanation."""
    key = paper_key(r.dataset)
    ref = SUCCESS_VS_T.get(key or "", {})
    base_logit = r.baseline.mean_abs_logit
    out = []
    for t in r.temperatures:
        e = r.at(t)
        ours = e.success_rate.get("softmax")
        if ours is None:
            continue
        spread = e.spread_of("success_rate", "softmax")
        paper = ref.get(int(t)) if float(t).is_integer() else None
        gap = None if paper is None else 100 * ours - paper
        within = None if gap is None else abs(gap) <= BAND + 100 * spread
        out.append({"T": t, "paper": paper, "ours": 100 * ours, "spread": 100 * spread, "gap": gap, "within": within,
                    "saturated": e.saturated_share,
                    "logit_vs_T_baseline": (e.mean_abs_logit / (t * base_logit)) if base_logit else None,
                    "accuracy": e.accuracy})
    return out


def _f(v: float | None, fmt: str, suffix: str = "") -> str:
    return "–" if v is None else f"{format(v, fmt)}{suffix}"


def section(r: SweepResult, compare: SweepResult | None = None) -> list[str]:
    pts = points(r)
    if not pts or all(p["paper"] is None for p in pts):
        return []
    other = {p["T"]: p for p in points(compare)} if compare else {}
    other_label = "quick profile (5 epochs)" if compare and compare.quick else "compared sweep"
    lines = ["## Fidelity to the paper", "",
             f"JSMA-F success per T, ours beside the paper's figure; ✓ within ±{BAND:.0f} points (plus one std over "
             "seeds where there are seeds), ✗ outside. Beside each point what explains it, measured on the same "
             "models: the share of held-out inputs whose deployed float32 softmax is saturated (JSMA-F then finds no "
             "pair with the gradient signs it needs) and the student's mean |logit| over T x the baseline's (1.0: the "
             "logits grew exactly T-fold)."
             + (f" The last column is the {other_label} at the same T." if other else ""),
             "", "| T | paper | ours | | saturated softmax | mean abs logit / (T x baseline) | accuracy |"
             + (f" {other_label} |" if other else ""),
             "|---|---|---|---|---|---|---|" + ("---|" if other else "")]
    for p in pts:
        mark = "–" if p["within"] is None else ("✓" if p["within"] else "✗")
        ours = f"{p['ours']:.1f}%" + (f" ± {p['spread']:.1f}" if p["spread"] else "")
        sat = None if p["saturated"] is None else 100 * p["saturated"]
        acc = None if p["accuracy"] is None else 100 * p["accuracy"]
        row = (f"| {temperature_label(p['T'])} | {_f(p['paper'], '.1f', '%')} | {ours} | {mark} | "
               f"{_f(sat, '.0f', '%')} | {_f(p['logit_vs_T_baseline'], '.2f')} | {_f(acc, '.1f', '%')} |")
        if other:
            o = other.get(p["T"])
            row += f" {_f(None if o is None else o['ours'], '.1f', '%')} |"
        lines.append(row)
    outside = [p for p in pts if p["within"] is False]
    lines += [""]
    if not outside:
        lines += [f"Every point lies within ±{BAND:.0f} points of the paper's.", ""]
    else:
        lines += [f"{len(outside)} of {len(pts)} points lie outside the band: T = "
                  + ", ".join(f"{temperature_label(p['T'])} ({p['gap']:+.1f} points)" for p in outside)
                  + ". What the measurements say:"]
        for p in outside:
            sat = p["saturated"]
            share = None if sat is None else 100 * sat
            words = (f"- T = {temperature_label(p['T'])}: ours {p['ours']:.1f}% vs the paper's {p['paper']:.1f}%; "
                     f"{_f(share, '.0f', '%')} of inputs have a saturated deployed softmax, mean |logit| is "
                     f"{_f(p['logit_vs_T_baseline'], '.2f')} x T x the baseline's")
            o = other.get(p["T"])
            if o is not None:
                words += f"; the {other_label} gives {o['ours']:.1f}% at this T"
            lines.append(words + ".")
        lines += [""]
    lines += _findings(pts, outside, other, other_label)
    lines += ["![fidelity: success vs saturation per T](fidelity.png)", ""]
    return lines


def saturation_rank_correlation(pts: list[dict[str, Any]]) -> float | None:
    """Spearman's rho between the saturated share and JSMA-F success over the temperatures (ties
    ranked as ties: many students sit at 0% and 100%); None below 3 points or without variation."""
    from scipy.stats import spearmanr

    pairs = [(p["saturated"], p["ours"]) for p in pts if p["saturated"] is not None]
    if len(pairs) < 3 or len({a for a, _ in pairs}) < 2 or len({b for _, b in pairs}) < 2:
        return None
    rho = spearmanr([a for a, _ in pairs], [b for _, b in pairs]).statistic
    return float(rho)


def _findings(pts: list[dict[str, Any]], outside: list[dict[str, Any]], other: dict[float, dict[str, Any]],
              other_label: str) -> list[str]:
    """What the measurements say, each sentence computed from them (nothing here is assumed)."""
    lines = []
    rho = saturation_rank_correlation(pts)
    if rho is not None:
        n = sum(p["saturated"] is not None for p in pts)
        lines.append(f"Over the {n} temperatures JSMA-F success and the share of saturated deployed softmax "
                     f"outputs have Spearman's rho = {rho:.2f}: "
                     + ("success falls where the softmax saturates." if rho <= -0.5
                        else "saturation alone does not explain the curve here."))
    for p in outside:
        o = other.get(p["T"])
        if o is None:
            continue
        delta, before = p["ours"] - o["ours"], o["ours"] - p["paper"]
        if before * p["gap"] < 0:
            verdict = (f"the training length moves this point across the paper's ({before:+.1f} -> "
                       f"{p['gap']:+.1f} points).")
        elif abs(p["gap"]) < abs(before):
            verdict = "longer training moves this point toward the paper's."
        else:
            verdict = "longer training does not close the gap."
        lines.append(f"Training length at T = {temperature_label(p['T'])}: {o['ours']:.1f}% with the {other_label}, "
                     f"{p['ours']:.1f}% with this sweep's training ({delta:+.1f} points): {verdict}")
    return lines + [""] if lines else []


def figure(r: SweepResult, path: Path, compare: SweepResult | None = None) -> None:
    from engine.reports.figures import _plt, _save, jsma_f_axis

    pts = points(r)
    if not pts:
        return
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    ts = [p["T"] for p in pts]
    seeded = [p["T"] for p in pts if r.at(p["T"]).per_seed]  # a sweep grown by seeds at some T has them there only
    where = "" if len(seeded) == len(pts) else " at T = " + ", ".join(temperature_label(t) for t in seeded)
    ax1.errorbar(ts, [p["ours"] for p in pts], yerr=[p["spread"] for p in pts] if seeded else None, fmt="o-",
                 color="tab:blue", capsize=3,
                 label="ours, JSMA-F" + (f" (mean ± std over seeds{where})" if seeded else ""))
    paper = [(p["T"], p["paper"]) for p in pts if p["paper"] is not None]
    if paper:
        xs, ys = zip(*paper, strict=True)
        ax1.plot(xs, ys, "kx", label="paper")
        ax1.fill_between(xs, [y - BAND for y in ys], [y + BAND for y in ys], color="gray", alpha=0.2,
                         label=f"paper ±{BAND:.0f} points")
    if compare:
        cp = points(compare)
        ax1.plot([p["T"] for p in cp], [p["ours"] for p in cp], "s--", color="tab:orange", alpha=0.8,
                 label="quick profile (5 epochs)" if compare.quick else "compared sweep")
    jsma_f_axis(ax1, "T (log scale)")
    sat = [(p["ours"], 100 * p["saturated"], p["T"]) for p in pts if p["saturated"] is not None]
    if sat:
        ax2.scatter([s[1] for s in sat], [s[0] for s in sat], color="tab:blue")
        for s, x, t in sat:
            ax2.annotate(f"T={temperature_label(t)}", (x, s), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax2.set_xlabel("held-out inputs with a saturated deployed softmax (%)")
    ax2.set_ylabel("JSMA-F success (%)")
    ax2.grid(alpha=0.3)
    fig.suptitle(f"fidelity to the paper — {r.dataset}", fontsize=9)
    _save(fig, path, "fidelity: " + "; ".join(f"T={temperature_label(p['T'])}: ours {p['ours']:.1f}% paper "
                                              f"{_f(p['paper'], '.1f')}" for p in pts))
    plt.close(fig)
