"""The report's "Carlini & Wagner" section: our C&W attacks beside their Tables IV and VI, per
temperature, and whether the L2 distance they need moves with T (C&W: rho = -0.05)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from engine.deployment import label as temperature_label
from engine.paper import CW_L2_VS_T_RHO, CW_TABLES, CW_TOLERANCE, paper_key
from engine.record.events import recorded_temperature
from engine.record.rundir import read_json
from engine.sweeps.result import SweepResult

METHODS = ("cw_l2", "cw_l0", "cw_linf")
NAMES = {"cw_l2": "CW-L2", "cw_l0": "CW-L0", "cw_linf": "CW-Linf"}
NORM = {"cw_l2": ("l2", "L2", ".2f"), "cw_l0": ("l0", "pixels", ".1f"), "cw_linf": ("linf", "L-inf", ".3f")}


def pearson(xs: list[float], ys: list[float]) -> float | None:
    pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None and math.isfinite(y)]
    if len(pts) < 3:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    syy = sum((p[1] - my) ** 2 for p in pts)
    if sxx == 0 or syy == 0:
        return None
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / math.sqrt(sxx * syy)


def _cell(case: dict[str, Any] | None, method: str) -> str:
    if not case:
        return "–"
    key, _unit, fmt = NORM[method]
    d = case.get(f"mean_{key}")
    return f"{100 * case['success_rate']:.0f}% · {'–' if d is None else format(d, fmt)}"


def _mark(case: dict[str, Any] | None, method: str, ref: float | None) -> str:
    if not case or ref is None or case.get(f"mean_{NORM[method][0]}") is None:
        return ""
    d = case[f"mean_{NORM[method][0]}"]
    return " ✓" if abs(d - ref) <= CW_TOLERANCE * ref else " ✗"


def _settings_line(cw: dict[str, Any]) -> list[str]:
    out = []
    for method in METHODS:
        if method in cw:
            s = cw[method]["settings"]
            out.append(f"- {NAMES[method]}: " + ", ".join(f"{k} {v}" for k, v in s.items())
                       + f"; {cw[method]['samples']} inputs, {cw[method]['n_attacks']} attacks")
    reduced = next((v["reduced"] for v in cw.values() if v.get("reduced")), "")
    if reduced:
        out.append(f"- **reduced from the reference settings**: {reduced}")
    return out


def table_rows(base_cw: dict[str, Any], dist_cw: dict[str, Any], key: str | None, top: str) -> list[str]:
    ref = CW_TABLES.get(key or "", {})
    lines = [f"| attack | case | ours, no distillation | C&W, no distillation | ours, T={top} | C&W, T=100 |",
             "|---|---|---|---|---|---|"]
    for method in METHODS:
        if method not in base_cw and method not in dist_cw:
            continue
        cases = list((base_cw.get(method) or dist_cw.get(method))["cases"])
        for case in cases:
            b = (base_cw.get(method) or {}).get("cases", {}).get(case)
            s = (dist_cw.get(method) or {}).get("cases", {}).get(case)
            rb, rs = ref.get(method, {}).get(case, (None, None))
            unit = NORM[method][1]
            lines.append(f"| {NAMES[method]} ({unit}) | {case} | {_cell(b, method)}{_mark(b, method, rb)} | "
                         f"{'–' if rb is None else f'100% · {rb}'} | {_cell(s, method)}{_mark(s, method, rs)} | "
                         f"{'–' if rs is None else f'100% · {rs}'} |")
    return lines


def sweep_section(r: SweepResult) -> list[str]:
    base_cw = r.baseline.cw
    temps = r.temperatures
    top = temperature_label(r.top)
    dist_cw = r.at(r.top).cw
    if not base_cw and not dist_cw:
        return []
    key = paper_key(r.dataset)
    lines = ["## Carlini & Wagner", "",
             "Their own attacks, on the logits (where distillation's x T scaling cannot saturate anything). Each "
             "cell: success · mean distance over the successful inputs; ✓/✗: within ±"
             f"{100 * CW_TOLERANCE:.0f}% of C&W's distance. C&W's numbers are from their S&P 2017 Tables IV "
             "(undistilled) and VI (distilled, T = 100), 1,000 MNIST test images, all at 100%.", ""]
    if r.dataset == "mnist-t10k":
        lines += ["Our training set is the MNIST test set's 8,000 images (the only MNIST available offline), not "
                  "the paper's 60,000; our held-out inputs are the other 2,000.", ""]
    lines += table_rows(base_cw, dist_cw, key, top) + [""]
    lines += _settings_line(dist_cw or base_cw) + [""]
    methods = [m for m in METHODS if m in dist_cw]
    lines += ["| T | " + " | ".join(f"{NAMES[m]} success | mean {NORM[m][1]}" for m in methods) + " |",
              "|---|" + "---|---|" * len(methods)]
    for t in temps:
        e = r.at(t)
        cells = []
        for m in methods:
            d = e.distance(m, NORM[m][0])
            sr = e.success_rate.get(m)
            cells += ["–" if sr is None else f"{100 * sr:.1f}%", "–" if d is None else format(d, NORM[m][2])]
        lines.append(f"| {temperature_label(t)} | " + " | ".join(cells) + " |")
    if "cw_l2" in methods:
        rho = pearson([float(t) for t in temps], [r.at(t).distance("cw_l2", "l2") for t in temps])
        lines += ["", f"Mean CW-L2 distance vs T: Pearson r = {'–' if rho is None else f'{rho:+.2f}'} over "
                  f"{len(temps)} temperatures (C&W: rho = {CW_L2_VS_T_RHO}, uncorrelated); "
                  "figure: cw_distance_vs_temperature.png.", "",
                  "![CW-L2 distance vs temperature](cw_distance_vs_temperature.png)"]
    return lines + [""]


def run_section(run_dir: Path, dataset: str) -> list[str]:
    """A single run: its C&W attacks per model, from attacks/<model>-cw_*.json."""
    cw: dict[str, dict[str, Any]] = {}
    for path in sorted((run_dir / "attacks").glob("*-cw_*.json")):
        rec = read_json(path, "delete it and run `defdistill-engine attack` to redo it")
        cw.setdefault(rec["model"], {})[rec["method"]] = rec
    if not cw:
        return []
    student_t = [t for v in cw.get("student", {}).values() if (t := recorded_temperature(v, "model_temperature"))]
    top = temperature_label(student_t[0]) if student_t else "T"
    lines = ["", "## Carlini & Wagner (on the logits)", "",
             "Each cell: success · mean distance over successful inputs; C&W's Tables IV / VI beside them.", ""]
    lines += table_rows(cw.get("baseline", {}), cw.get("student", {}), paper_key(dataset), top)
    first = next(iter(cw.values()))
    lines += [""] + _settings_line(first) + paired_lines(run_dir, cw)
    return lines


def paired_lines(run_dir: Path, cw: dict[str, dict[str, Any]]) -> list[str]:
    """The baseline's and the student's distances on the same attacks: the means above are over each
    model's own successes, so they compare different inputs; here only (input, target) both reached."""
    import numpy as np

    out = []
    for method in METHODS:
        if method not in cw.get("baseline", {}) or method not in cw.get("student", {}):
            continue
        rows = {}
        for model in ("baseline", "student"):
            path = run_dir / "attacks" / f"{model}-{method}.npz"
            if not path.exists():
                break
            with np.load(path) as d:
                inputs = cw[model][method].get("inputs")
                if inputs is None:
                    break
                rows[model] = {(int(inputs[int(s)]), int(t)): float(v) for s, t, v, ok in
                               zip(d["sample"], d["target"], d[NORM[method][0]], d["success"], strict=True) if ok}
        if len(rows) < 2:
            continue
        both = sorted(set(rows["baseline"]) & set(rows["student"]))
        n_all = cw["baseline"][method]["n_attacks"]
        if not both:
            out.append(f"- {NAMES[method]} on the same attacks: no attack reached its target on both models "
                       f"(of {n_all}).")
            continue
        key, unit, fmt = NORM[method]
        b = sum(rows["baseline"][k] for k in both) / len(both)
        st = sum(rows["student"][k] for k in both) / len(both)
        out.append(f"- {NAMES[method]} on the same attacks (the {len(both)} of {n_all} (input, target) both models' "
                   f"attacks reached): mean {unit} {format(b, fmt)} without distillation, {format(st, fmt)} "
                   "distilled.")
    return out
