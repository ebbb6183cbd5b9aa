"""Is training at high T stable? Two uses:

    python bench/training_stability.py study [--preset mnist-t10k] [--data-root ../shared/data]
        [--settings table2,momentum-0.5,warmup-3,loss-T2,clip-1] [--temperatures 1,2,5,...] [--seeds 0,1,2]
        [--epochs 10] [--study-dir runs/stability-study] [--out docs/training-stability/study]
    python bench/training_stability.py LABEL=RUN_DIR [LABEL=RUN_DIR ...] --out docs/DIR/training_stability

`study` trains a teacher and its student at every temperature and seed under each candidate setting
(`defdistill-engine run` per cell, attacks off, in STUDY_DIR/SETTING/T-<T>-s<seed>), then writes the
table (markdown), JSON and a figure: per cell, whether a phase collapsed (the engine's own collapse watch:
it learned and fell back), final and best held-out accuracy of teacher and student, and the student's
gradient support (share of input pixels with a non-zero gradient of the predicted logit, dead ReLU
units). Every cell is a run directory: an interrupted study resumes (finished cells are read, partial
ones resumed, refused ones kept as collapsed), and a later invocation with more seeds or temperatures
trains only the new cells. The candidate chosen: no collapse in any cell, student accuracy within a
point of the best setting's.

The second form draws held-out accuracy per epoch of given runs side by side (nothing is trained): the
full mnist-t10k reference's constant lr 0.1 against the lr halved every 10 epochs, both at T = 100.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.collapse import collapse_logged  # noqa: E402
from engine.paper import PAPER_TEMPERATURES  # noqa: E402
from engine.record.events import EventType  # noqa: E402
from engine.record.rundir import iter_events, read_json  # noqa: E402

# The candidates, as preset overrides on top of the preset (its Table II reading: SGD lr 0.1, momentum
# 0.9, lr halved every 10 epochs, loss x T, grad-norm clip 5).
SETTINGS: dict[str, list[str]] = {
    "table2": [],
    "momentum-0.5": ["training.momentum=0.5"],  # the other reading of Table II (paper-notes.md section 2)
    "warmup-3": ["training.warmup_epochs=3"],  # lr rising over the first 3 epochs
    "loss-T2": ["training.loss_scale='T2'"],  # Hinton et al.: the loss at T scaled by T^2 (both phases)
    "clip-1": ["training.grad_clip=1.0"],  # a tighter grad-norm clip
}


def curves(run_dir: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for e in iter_events(run_dir / "events.jsonl"):
        if e.type == EventType.EPOCH:
            rows = out.setdefault(e.data.phase, [])
            del rows[e.data.epoch:]  # a resumed epoch replaces the one it repeats
            rows.append(e.data.val_accuracy)
    return out


# -- the study ------------------------------------------------------------------------------------
def _state(run: Path) -> str:
    """finished | refused (the engine stopped it: a collapse to chance) | failed | partial | new."""
    if not (run / "events.jsonl").exists():
        return "new"
    ends = [e for e in iter_events(run / "events.jsonl") if e.type in (EventType.FINISHED, EventType.FAILED)]
    if ends and ends[-1].type == EventType.FINISHED:
        return "finished"
    if ends:
        return "refused" if "collapsed to chance" in ends[-1].data.message else "failed"
    return "partial"


def _train(run: Path, preset: str, overrides: list[str], data_root: str | None) -> None:
    state = _state(run)
    if state in ("finished", "refused"):
        return
    if state == "new":
        args = ["run", preset, "--run-dir", str(run), *[a for o in overrides for a in ("--set", o)]]
    else:
        args = ["resume", str(run)]
    args += ["--quiet"] + (["--data-root", data_root] if data_root else [])
    subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=ROOT, check=False)


def _cell(run: Path) -> dict[str, Any]:
    """One (setting, T, seed): collapses, accuracies and the student's gradient support."""
    notices = [e.data.text for e in iter_events(run / "events.jsonl") if e.type == EventType.NOTICE]
    c = curves(run)
    row: dict[str, Any] = {"state": _state(run), "collapsed": [p for p in ("teacher", "student")
                                                                if collapse_logged(notices, p)]}
    for phase in ("teacher", "student"):
        acc = c.get(phase) or []
        row[phase] = {"final": acc[-1] if acc else None, "best": max(acc) if acc else None, "epochs": len(acc)}
    summary = read_json(run / "summary.json", "delete the cell's run directory to train it again") or {}
    support = (summary.get("gradient_support") or {}).get("student")
    row["student_pixel_share"] = support["pixel_share"] if support else None
    row["student_dead_units"] = support["dead_unit_share"] if support else None
    meta = read_json(run / "meta.json", "delete the cell's run directory to train it again") or {}
    row["torch"], row["commit"] = meta.get("torch"), str(meta.get("git_commit") or "")[:10]
    return row


def _table(cells: dict[str, dict[str, dict[str, Any]]], temps: list[float]) -> tuple[list[str], dict[str, Any]]:
    """The markdown table (one row per setting: collapses, mean student accuracy per T, lowest gradient
    support) and the per-setting summary the choice reads."""
    head = "| setting | collapses | " + " | ".join(f"T={t:g}" for t in temps) + " | mean | lowest pixel share |"
    lines = [head, "|---" * (len(temps) + 4) + "|"]
    summary: dict[str, Any] = {}
    for setting, by_run in cells.items():
        per_t = {}
        for t in temps:
            accs = [r["student"]["final"] for name, r in by_run.items() if name.startswith(f"T-{t:g}-")
                    and r["student"]["final"] is not None and r["state"] == "finished"]
            per_t[f"{t:g}"] = sum(accs) / len(accs) if accs else None
        collapses = sum(1 for r in by_run.values() if r["collapsed"] or r["state"] == "refused")
        done = [r for r in by_run.values() if r["state"] in ("finished", "refused")]
        accs = [v for v in per_t.values() if v is not None]
        shares = [r["student_pixel_share"] for r in by_run.values() if r["student_pixel_share"] is not None]
        summary[setting] = {"collapses": collapses, "cells": len(done), "student_accuracy_by_t": per_t,
                            "mean_student_accuracy": sum(accs) / len(accs) if accs else None,
                            "lowest_pixel_share": min(shares) if shares else None}
        cell = lambda v: "–" if v is None else f"{100 * v:.1f}%"  # noqa: E731
        lines.append(f"| {setting} | {collapses} / {len(done)} | " + " | ".join(cell(per_t[f'{t:g}']) for t in temps)
                     + f" | {cell(summary[setting]['mean_student_accuracy'])} | "
                       f"{cell(summary[setting]['lowest_pixel_share'])} |")
    return lines, summary


def choose(summary: dict[str, Any], cells_expected: int) -> str | None:
    """The setting with no collapse over every cell and student accuracy within a point of the best."""
    complete = {s: v for s, v in summary.items() if v["cells"] == cells_expected and v["mean_student_accuracy"]}
    if not complete:
        return None
    best = max(v["mean_student_accuracy"] for v in complete.values())
    fit = [s for s, v in complete.items() if v["collapses"] == 0 and v["mean_student_accuracy"] >= best - 0.01]
    return max(fit, key=lambda s: complete[s]["mean_student_accuracy"]) if fit else None


def _figure(cells: dict[str, dict[str, dict[str, Any]]], temps: list[float], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Left: accuracy (and collapses); right: where the student's input gradient lives, the measure that
    # told a dead-unit student from a masked one.
    fig, (ax, gx) = plt.subplots(1, 2, figsize=(12, 4))
    for i, (setting, by_run) in enumerate(cells.items()):
        xs, ys, xc, gs = [], [], [], []
        for t in temps:
            for name, r in by_run.items():
                if not name.startswith(f"T-{t:g}-"):
                    continue
                x = temps.index(t) + (i - len(cells) / 2) * 0.08  # settings side by side at each T
                if r["collapsed"] or r["state"] == "refused":
                    xc.append(x)
                elif r["student"]["final"] is not None:
                    xs.append(x)
                    ys.append(100 * r["student"]["final"])
                if r["student_pixel_share"] is not None:
                    gs.append((x, 100 * r["student_pixel_share"]))
        line = ax.plot(xs, ys, "o", ms=4, label=setting)[0]
        if xc:
            ax.plot(xc, [2] * len(xc), "x", ms=8, color=line.get_color())
        if gs:
            gx.plot(*zip(*gs, strict=True), "o", ms=4, color=line.get_color(), label=setting)
    for a in (ax, gx):
        a.set_xticks(range(len(temps)), [f"{t:g}" for t in temps])
        a.set_xlabel("distillation temperature T")
        a.set_ylim(0, 100)
        a.grid(alpha=0.3)
    ax.set_ylabel("student held-out accuracy (%)")
    ax.legend(fontsize=7, loc="lower left", title="x at the bottom: a collapse", title_fontsize=7)
    gx.set_ylabel("student: input pixels with a gradient (%)")
    gx.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)


def study(args: argparse.Namespace) -> None:
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown setting(s) {', '.join(unknown)}; choose from {', '.join(SETTINGS)}")
    temps = [float(t) for t in args.temperatures.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    root = Path(args.study_dir)
    t0 = time.time()
    order = [(seed, t, s) for seed in seeds for t in temps for s in settings]  # every setting seen early
    for i, (seed, t, setting) in enumerate(order, 1):
        run = root / setting / f"T-{t:g}-s{seed}"
        overrides = [*SETTINGS[setting], "distillation.phases=['teacher', 'student']",
                     f"distillation.temperature={t!r}", f"seed={seed}", f"training.epochs={args.epochs}",
                     "attack.enabled=false"]
        print(f"[{i}/{len(order)}, {(time.time() - t0) / 60:.0f} min] {setting} T={t:g} seed {seed}: {_state(run)}",
              file=sys.stderr, flush=True)
        _train(run, args.preset, overrides, args.data_root)
    cells = {s: {f"T-{t:g}-s{seed}": _cell(root / s / f"T-{t:g}-s{seed}") for t in temps for seed in seeds}
             for s in settings}
    lines, summary = _table(cells, temps)
    chosen = choose(summary, len(temps) * len(seeds))
    full = set(PAPER_TEMPERATURES) <= set(temps) and len(seeds) >= 3
    provenance = sorted({(r["torch"], r["commit"]) for by in cells.values() for r in by.values() if r["torch"]})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(
        {"preset": args.preset, "epochs": args.epochs, "temperatures": temps, "seeds": seeds,
         "settings": {s: SETTINGS[s] for s in settings}, "chosen": chosen if full else None,
         "leading_candidate": chosen, "full_study": full, "summary": summary, "cells": cells,
         "provenance": [{"torch": a, "commit": b} for a, b in provenance]}, indent=1))
    _figure(cells, temps, out)
    text = [f"Student held-out accuracy (final epoch, mean over seeds {seeds}) per T, {args.epochs} epochs per phase, "
            f"preset {args.preset}; collapses over teacher and student of every cell.", "", *lines, "",
            (f"chosen: {chosen or 'none (a setting needs every cell done, no collapse, accuracy within a point)'}"
             if full else f"leading candidate of this screen: {chosen or 'none'} (a screen, not the study: a default "
                          f"is chosen only over all {len(PAPER_TEMPERATURES)} paper temperatures and 3 seeds)"),
            "provenance: " + "; ".join(f"torch {a}, commit {b}" for a, b in provenance)]
    out.with_suffix(".md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


def compare(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    ap.add_argument("--out", required=True, help="path without suffix: .png and .json are written")
    args = ap.parse_args(argv)
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


def main() -> None:
    if sys.argv[1:2] != ["study"]:
        compare(sys.argv[1:])
        return
    ap = argparse.ArgumentParser(prog="training_stability.py study")
    ap.add_argument("--preset", default="mnist-t10k")
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--temperatures", default=",".join(f"{t:g}" for t in PAPER_TEMPERATURES))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=10, help="per phase: the screen's reduced length")
    ap.add_argument("--study-dir", default="runs/stability-study", help="one run directory per cell (resumable)")
    ap.add_argument("--out", default="docs/training-stability/study", help="path without suffix: .md .json .png")
    study(ap.parse_args(sys.argv[2:]))


if __name__ == "__main__":
    main()
