"""The paper's figures redrawn from our measurements (PNG, matplotlib), with its numbers beside them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from engine.deployment import label as temperature_label
from engine.paper import SUCCESS_VS_T, paper_key
from engine.sweeps.result import SweepResult

OUTPUT_STYLE = {"softmax": ("JSMA-F: softmax at T=1 (the paper)", "tab:blue"),
                "logits": ("JSMA-Z: logits", "tab:orange"),
                "softmax_T": ("softmax(z/T) (Carlini & Wagner)", "tab:green"),
                "cw_l2": ("CW-L2 on the logits", "tab:red"),
                "cw_l0": ("CW-L0 on the logits", "tab:purple"),
                "cw_linf": ("CW-Linf on the logits", "tab:brown"),
                "transfer": ("transfer from the baseline (best of CW-L2 kappa, JSMA-F)", "tab:olive"),
                "simba": ("SimBA, gradient-free, on the log-scores", "tab:cyan")}


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, description: str = "") -> None:
    import io

    from engine.record.rundir import atomic_write_bytes

    buf = io.BytesIO()
    # what the figure says in words, in the PNG's own text chunk (readable without looking at it)
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Description": description} if description
                else None)
    atomic_write_bytes(path, buf.getvalue())


def jsma_f_axis(ax, xlabel: str) -> None:
    """An axis of JSMA-F success (%) against T on a log scale (the fidelity figure's, the gap study's)."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("JSMA-F success (%)")
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def success_vs_temperature(result: SweepResult, path: Path) -> None:
    plt = _plt()
    temps = result.temperatures
    fig, ax = plt.subplots(figsize=(9.5, 4.2))
    present = {k for e in result.by_temperature.values() for k in e.success_rate}
    for out, (label, color) in OUTPUT_STYLE.items():
        if out not in present:
            continue
        entries = result.entries()
        ys = [100 * e.success_rate.get(out, math.nan) for e in entries]
        err = [100 * e.spread_of("success_rate", out) for e in entries]
        ax.errorbar(temps, ys, yerr=err if any(err) else None, fmt="o-", color=color, capsize=3,
                    label=f"{label}, distilled" + (" (mean ± std over seeds)" if any(err) else ""))
        base = result.baseline.success_rate.get(out)
        if base is not None:
            ax.axhline(100 * base, color=color, linestyle="--", linewidth=1, label=f"{out}, no distillation")
    key = paper_key(result.dataset)
    if key:
        ref = SUCCESS_VS_T[key]
        ax.plot(list(ref), list(ref.values()), "kx", markersize=7, label=f"paper ({key.upper()}, JSMA-F)")
    verdicts = {t: (result.at(t).verdict or {}).get("verdict") for t in temps}
    for t in temps:  # each T's verdict, printed above its point: M = masked gradients, ok = no sign of masking
        v = verdicts[t]
        if v:
            ax.annotate({"masked": "M", "no sign of masking": "ok"}.get(v, "?"), (t, 101), ha="center", fontsize=7,
                        color={"masked": "tab:red", "no sign of masking": "tab:green"}.get(v, "gray"))
    ax.set_xscale("log")
    ax.set_xlabel("distillation temperature T (log scale); above each T its verdict: M = masked gradients")
    ax.set_ylabel("attack success rate (%)")
    ax.set_ylim(-3, 106)
    quick = " (quick profile)" if result.quick else ""
    ax.set_title(f"attack success vs temperature — {result.dataset}{quick}")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    words = "; ".join(f"T={temperature_label(t)}: {v}" for t, v in verdicts.items() if v)
    _save(fig, path, f"success vs temperature; verdicts: {words}" if words else "success vs temperature")
    plt.close(fig)


def cw_distance_vs_temperature(result: SweepResult, path: Path) -> None:
    """Mean CW-L2 distance per T (C&W found it flat: rho = -0.05); nothing drawn without CW-L2."""
    temps = result.temperatures
    entries = result.entries()
    ys = [e.distance("cw_l2", "l2") for e in entries]
    if all(y is None for y in ys):
        return
    from engine.reports.cw_report import pearson

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    err = [e.spread_of("cw_distance", "cw_l2", "l2") for e in entries]
    ax.errorbar(temps, [math.nan if y is None else y for y in ys], yerr=err if any(err) else None, fmt="o-",
                color="tab:red", capsize=3, label="distilled student")
    base = result.baseline.distance("cw_l2", "l2")
    if base is not None:
        ax.axhline(base, linestyle="--", color="gray", label="no distillation")
    rho = pearson([float(t) for t in temps], ys)
    ax.set_xscale("log")
    ax.set_xlabel("distillation temperature T (log scale)")
    ax.set_ylabel("mean L2 distance (successful CW-L2)")
    ax.set_title(f"CW-L2 distance vs temperature — {result.dataset}; Pearson r = "
                 + ("–" if rho is None else f"{rho:+.2f}") + " (C&W: -0.05)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)


def accuracy_vs_temperature(result: SweepResult, path: Path) -> None:
    plt = _plt()
    temps = result.temperatures
    fig, ax = plt.subplots(figsize=(7, 3.6))
    entries = result.entries()
    err = [100 * e.spread_of("accuracy") for e in entries]
    ax.errorbar(temps, [100 * e.accuracy for e in entries], yerr=err if any(err) else None, fmt="o-", capsize=3,
                label="distilled student (deployed T=1)")
    ax.axhline(100 * result.baseline.accuracy, linestyle="--", color="gray", label="no distillation")
    ax.set_xscale("log")
    ax.set_xlabel("distillation temperature T (log scale)")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title(f"held-out accuracy vs temperature — {result.dataset}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)


def gradient_histograms(entries: list[tuple[str, dict[str, Any] | None]], path: Path) -> None:
    """Order-of-magnitude histograms of the deployed softmax's gradient amplitude, one row per model."""
    plt = _plt()
    rows = [(name, amp) for name, amp in entries if amp]
    if not rows:
        return
    exps = sorted({int(k[2:]) for _, amp in rows for k in amp["histogram_log10"] if k != "0"})
    labels = ["0"] + [f"1e{e}" for e in exps]
    fig, axes = plt.subplots(len(rows), 1, figsize=(7, 1.2 + 1.1 * len(rows)), sharex=True, squeeze=False)
    for ax, (name, amp) in zip(axes[:, 0], rows, strict=True):
        counts = [amp["histogram_log10"].get(lab, 0) / amp["n_inputs"] for lab in labels]
        ax.bar(range(len(labels)), counts, color=["tab:red"] + ["tab:blue"] * (len(labels) - 1))
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        ax.set_ylim(0, 1)
    axes[-1, 0].set_xticks(range(len(labels)), labels, rotation=60, fontsize=7)
    axes[-1, 0].set_xlabel("mean |dF/dx| of the deployed softmax per input (order of magnitude; red: exactly 0)")
    fig.suptitle("gradient amplitude (share of inputs per bin)", fontsize=9)
    _save(fig, path)
    plt.close(fig)


def adversarial_grid(examples: list[tuple[str, Path]], path: Path, per_row: int = 4) -> None:
    """Rows of (original, adversarial) pairs with the target, from attacks/*.npz files."""
    plt = _plt()
    rows = [(title, np.load(npz)) for title, npz in examples if npz.exists()]
    if not rows:
        return
    fig, axes = plt.subplots(len(rows), 2 * per_row, figsize=(1.3 * 2 * per_row, 1.6 * len(rows)), squeeze=False)
    for r, (title, data) in enumerate(rows):
        order = np.argsort(~data["success"], kind="stable")[:per_row]
        for k in range(per_row):
            for j, key in enumerate(("x", "x_adv")):
                ax = axes[r, 2 * k + j]
                ax.axis("off")
                if k >= len(order):
                    continue
                i = order[k]
                img = data[key][i]
                ax.imshow(img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0)), cmap="gray", vmin=0, vmax=1)
                if j == 0:
                    ax.set_title(f"{int(data['label'][i])}", fontsize=7)
                else:
                    ok = "ok" if data["success"][i] else (str(data["ended"][i]) if "ended" in data else "failed")
                    ax.set_title(f"→{int(data['target'][i])} {ok}", fontsize=7,
                                 color="green" if data["success"][i] else "red")
        axes[r, 0].text(-0.6, 0.5, title, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=8)
    fig.suptitle("original | adversarial (target after the arrow)", fontsize=9)
    _save(fig, path)
    plt.close(fig)


def write_sweep_figures(sweep_dir: Path, result: SweepResult) -> list[Path]:
    paths = [sweep_dir / n for n in ("success_vs_temperature.png", "accuracy_vs_temperature.png",
                                     "gradient_amplitude.png", "adversarial_examples.png",
                                     "cw_distance_vs_temperature.png")]
    if not result.temperatures:  # no distilled run finished: nothing to draw against T
        return []
    success_vs_temperature(result, paths[0])
    cw_distance_vs_temperature(result, paths[4])
    accuracy_vs_temperature(result, paths[1])
    gradient_histograms([("no distillation", result.baseline.gradient_amplitude)]
                        + [(f"T={temperature_label(t)}", result.at(t).gradient_amplitude)
                           for t in result.temperatures], paths[2])
    top = temperature_label(result.top)
    student_dir = sweep_dir / result.at(result.top).first_run_dir
    base_dir = sweep_dir / result.baseline.first_run_dir
    adversarial_grid([("baseline\nsoftmax", base_dir / "attacks" / "baseline-softmax.npz"),
                      (f"student T={top}\nsoftmax", student_dir / "attacks" / "student-softmax.npz"),
                      (f"student T={top}\nsoftmax_T", student_dir / "attacks" / "student-softmax_T.npz"),
                      (f"student T={top}\nCW-L2", student_dir / "attacks" / "student-cw_l2.npz")], paths[3])
    return [p for p in paths if p.exists()]
