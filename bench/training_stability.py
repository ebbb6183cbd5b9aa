"""Held-out accuracy per epoch of the teacher and student of runs trained under different lr
schedules, drawn side by side (a PNG) and written as JSON: is training at high T stable?

    python bench/training_stability.py LABEL=RUN_DIR [LABEL=RUN_DIR ...] --out docs/DIR/training_stability

Reads each run's events.jsonl (nothing is re-trained). Used for the full mnist-t10k reference:
the literal Table II constant lr 0.1 against the lr halved every 10 epochs, both at T = 100.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.runs.events import EventType  # noqa: E402
from engine.runs.rundir import iter_events  # noqa: E402


def curves(run_dir: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for e in iter_events(run_dir / "events.jsonl"):
        if e.type == EventType.EPOCH:
            rows = out.setdefault(e.data.phase, [])
            del rows[e.data.epoch:]  # a resumed epoch replaces the one it repeats
            rows.append(e.data.val_accuracy)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    ap.add_argument("--out", required=True, help="path without suffix: .png and .json are written")
    args = ap.parse_args()
    runs = {}
    for item in args.runs:
        label, _, path = item.rpartition("=")  # labels may hold "=" (T=100), paths here do not
        runs[label] = curves(Path(path))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = [p for p in ("baseline", "teacher", "student") if any(p in c for c in runs.values())]
    fig, axes = plt.subplots(1, len(phases), figsize=(5 * len(phases), 3.6), squeeze=False)
    for ax, phase in zip(axes[0], phases, strict=True):
        for label, c in runs.items():
            if phase in c:
                ax.plot(range(1, len(c[phase]) + 1), [100 * a for a in c[phase]], "-o", ms=2, label=label)
        ax.set_title(phase, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("held-out accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out.with_suffix(".png"), dpi=110)
    summary = {label: {phase: {"final": c[phase][-1], "best": max(c[phase]), "min_after_epoch_5": min(c[phase][5:])
                               if len(c[phase]) > 5 else None, "per_epoch": c[phase]} for phase in c}
               for label, c in runs.items()}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    print("| run | phase | final | best | lowest after epoch 5 |\n|---|---|---|---|---|")
    for label, c in summary.items():
        for phase, v in c.items():
            low = "–" if v["min_after_epoch_5"] is None else f"{100 * v['min_after_epoch_5']:.1f}%"
            print(f"| {label} | {phase} | {100 * v['final']:.1f}% | {100 * v['best']:.1f}% | {low} |")


if __name__ == "__main__":
    main()
