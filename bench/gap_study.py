"""Issue 31: the mnist-t10k JSMA-F gap at T = 2 and T = 5 (about 21 points below the paper), measured.

Reads the committed sweep.json files of the grid (nothing is trained here; bench/gap_study.sh runs the
sweeps) and writes, into docs/gap-study/:
  grid.md    the table T x clip x length x seed (JSMA-F success, saturated share, accuracy) and the cells'
             mean +- std over seeds beside the paper's point
  grid.json  the same numbers
  grid.png   the grid at T = 2 and T = 5: each cell's seeds and mean against the paper's point
  reference-seeds.png
             the full reference's fidelity figure (docs/sweep-mnist-t10k-full/fidelity.png) with the seeds
             sweep's seeds folded in: JSMA-F mean +- std over seeds 0-2 at T = 2, 5, 10, 100

    python bench/gap_study.py           # write them
    python bench/gap_study.py --check   # exit 1 if grid.md/grid.json differ from what the sweeps give
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scipy.stats import t as student_t  # noqa: E402

from engine.deployment import label  # noqa: E402
from engine.paper import SUCCESS_VS_T  # noqa: E402
from engine.reports import fidelity  # noqa: E402
from engine.reports.figures import _plt, _save  # noqa: E402
from engine.sweeps.collect import aggregate_seeds  # noqa: E402
from engine.sweeps.result import SweepEntry, SweepResult  # noqa: E402

DOCS = ROOT / "docs"
OUT = DOCS / "gap-study"
# The sweeps of the grid, committed under docs/: the references and the three sweeps of bench/gap_study.sh.
SOURCES = ("sweep-mnist-t10k-full", "sweep-mnist-t10k-full-clip5", "sweep-mnist-t10k-quick",
           "sweep-mnist-t10k-gap-quick-clip1", "sweep-mnist-t10k-gap-full-clip5", "sweep-mnist-t10k-gap-lr-constant",
           "sweep-mnist-t10k-gap-seeds", "sweep-mnist-t10k-gap-lr-constant-seeds")
REFERENCE, SEEDS = "sweep-mnist-t10k-full", "sweep-mnist-t10k-gap-seeds"
# What must be the same for the seeds sweep's seeds and the reference's seed 0 to be seeds of one configuration:
# the preset's sections (the data less where it lies) and JSMA's settings (the seeds sweep runs JSMA only)
SAME = ("network", "training", "numerics", "distillation")
SAME_DATA = ("dataset", "split", "train_limit", "test_limit")
# the attack's seed picks the held-out inputs: every seed attacks the same ones, so their spread is training's
SAME_JSMA = ("samples", "outputs", "theta", "upsilon", "no_pair", "seed", "models")
GRID_T = (2.0, 5.0)
SEEDED_T = (2.0, 5.0, 10.0, 100.0)  # the temperatures bench/gap_study.sh runs with seeds 1 and 2


@dataclass(frozen=True)
class Cell:
    source: str
    temperature: float
    clip: float
    epochs: int
    schedule: str  # the learning rate: "constant" (Table II) or "x0.5/10" (halved every 10 epochs)
    seed: int
    jsma_f: float
    saturated: float | None
    accuracy: float
    # what JSMA-F's failures come from, beside saturation: JSMA on the logits (no softmax to saturate), the
    # share of pixels the deployed softmax's input gradient reaches and of ReLU units dead on held-out inputs
    # (None in sweeps made before they were measured)
    jsma_logits: float | None = None
    pixel_share: float | None = None
    dead_units: float | None = None

    @property
    def length(self) -> str:
        return "full" if self.epochs >= 50 else "quick"


def _seeds(entry: SweepEntry, sweep_seeds: list[int] | None, preset_seed: int) -> list[tuple[int, SweepEntry]]:
    if entry.per_seed:
        return [(e.seed if e.seed is not None else preset_seed, e) for e in entry.per_seed]
    return [((sweep_seeds or [preset_seed])[0], entry)]


def cells(sources: tuple[str, ...] = SOURCES) -> tuple[list[Cell], list[str]]:
    """Every (T, seed) the grid's sweeps measured, and the sources not there yet."""
    out, missing = [], []
    for name in sources:
        path = DOCS / name / "sweep.json"
        if not path.exists():
            missing.append(name)
            continue
        r = SweepResult.from_json(json.loads(path.read_text()), path)
        training = r.setup["preset"]["training"]
        for t in r.temperatures:
            for seed, e in _seeds(r.at(t), r.seeds, r.setup["preset"]["seed"]):
                schedule = ("constant" if training["lr_decay"] == 1.0
                            else f"x{training['lr_decay']:g}/{training['decay_every']}")
                out.append(Cell(name, t, float(training["grad_clip"]), int(training["epochs"]), schedule, seed,
                                e.success_rate["softmax"], e.saturated_share, e.accuracy,
                                e.success_rate.get("logits"), e.gradient_pixel_share, e.dead_unit_share))
    return out, missing


def _refuse(problem: str) -> NoReturn:
    """Bad input, as the engine's commands refuse it: one line naming the problem and the fix, exit 2."""
    print(f"gap_study: {problem}", file=sys.stderr)
    raise SystemExit(2)


def _commits(name: str) -> list[str]:
    """The commits a committed sweep's runs were made with (its provenance)."""
    data = json.loads((DOCS / name / "sweep.json").read_text())
    return data["setup"].get("provenance", {}).get("commits", ["?"])


def reference_with_seeds(docs: Path = DOCS) -> SweepResult | None:
    """The full reference (seed 0 at nine T) with the seeds sweep's seeds folded in at the T it ran: each such
    T's entry (and the baseline's) the mean and std over all its seeds, as one sweep of those seeds would have
    written it (engine.sweeps.collect.aggregate_seeds); None until the seeds sweep is committed."""
    path = docs / SEEDS / "sweep.json"
    if not path.exists():
        return None
    ref, more = (json.loads((docs / name / "sweep.json").read_text()) for name in (REFERENCE, SEEDS))
    a, b = ref["setup"]["preset"], more["setup"]["preset"]
    differ = ([k for k in SAME if a[k] != b[k]] + [f"data.{k}" for k in SAME_DATA if a["data"][k] != b["data"][k]]
              + [f"attack.{k}" for k in SAME_JSMA if a["attack"][k] != b["attack"][k]])
    if differ:
        _refuse(f"docs/{SEEDS} differs from docs/{REFERENCE} in {', '.join(differ)}: its seeds are "
                         "another configuration's; run its sweep with the reference's preset")
    if a["seed"] in (more["seeds"] or [b["seed"]]):
        _refuse(f"docs/{SEEDS} ran seed {a['seed']}, the reference's own: it would be counted twice; run "
                         "its sweep with other seeds")

    def fold(own: dict, other: dict) -> dict:
        theirs = other.get("per_seed") or [other]
        # only what the seeds sweep measured too: the reference's C&W, transfer and verdict are seed 0's alone,
        # and averaged with nothing they would read as a mean over the seeds with no spread
        keep = {k: v for k, v in own.items() if k in theirs[0] and k != "paired_with_baseline"}
        for key in ("success_rate", "mean_features_changed"):
            keep[key] = {o: v for o, v in own[key].items() if o in theirs[0][key]}
        return aggregate_seeds([{**keep, "seed": a["seed"]}, *theirs])  # its first entry's keys: `keep`'s

    ref["by_temperature"] = {k: fold(e, more["by_temperature"][k]) if k in more["by_temperature"] else e
                             for k, e in ref["by_temperature"].items()}
    ref["baseline"] = fold(ref["baseline"], more["baseline"])
    ref["seeds"] = sorted({a["seed"], *(more["seeds"] or [b["seed"]])})
    return SweepResult.from_json(ref, f"docs/{REFERENCE} with docs/{SEEDS}")


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.pstdev(values) if len(values) > 1 else 0.0)


def prediction_interval(values: list[float]) -> tuple[float, float] | None:
    """Where one more seed's value falls with 95% probability, from these seeds (normal, unknown variance:
    mean +- t(0.975, n - 1) x sample std x sqrt(1 + 1/n)); None under two seeds. The paper's point is one more
    training of the same recipe if the recipes agree: inside it is "within our spread"."""
    n = len(values)
    if n < 2:
        return None
    half = float(student_t.ppf(0.975, n - 1)) * statistics.stdev(values) * math.sqrt(1 + 1 / n)
    mean = statistics.fmean(values)
    return max(0.0, mean - half), min(1.0, mean + half)  # a success rate lies in [0, 1]


def _within(paper: float | None, interval: tuple[float, float] | None) -> bool | None:
    return None if paper is None or interval is None else interval[0] <= paper / 100 <= interval[1]


def _yes(value: bool | None) -> str:
    return {None: "–", True: "yes", False: "no"}[value]


def summary(all_cells: list[Cell]) -> list[dict]:
    """Per (T, length, clip, lr schedule): the seeds' JSMA-F success (mean, std, each), saturation and accuracy."""
    groups: dict[tuple[float, str, float, str], list[Cell]] = {}
    for c in all_cells:
        groups.setdefault((c.temperature, c.length, c.clip, c.schedule), []).append(c)
    rows = []
    for (t, length, clip, schedule), cs in sorted(groups.items()):
        cs = sorted(cs, key=lambda c: c.seed)
        mean, std = _mean_std([c.jsma_f for c in cs])
        sat = [c.saturated for c in cs if c.saturated is not None]
        paper = SUCCESS_VS_T["mnist"].get(int(t)) if float(t).is_integer() else None
        interval = prediction_interval([c.jsma_f for c in cs])
        rows.append({"T": t, "length": length, "clip": clip, "schedule": schedule, "epochs": cs[0].epochs,
                     "seeds": [c.seed for c in cs],
                     "jsma_f": [c.jsma_f for c in cs], "jsma_f_mean": mean, "jsma_f_std": std,
                     "saturated_mean": statistics.fmean(sat) if sat else None,
                     "accuracy_mean": statistics.fmean(c.accuracy for c in cs), "paper": paper,
                     "gap_points": None if paper is None else 100 * mean - paper,
                     # the paper's point inside our seeds' 95% prediction interval (None with one seed)
                     "prediction_interval": interval,
                     "paper_within_spread": _within(paper, interval),
                     "sources": sorted({c.source for c in cs})})
    return rows


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _interval_text(interval: tuple[float, float] | None) -> str:
    return "–" if interval is None else f"{100 * interval[0]:.1f} to {100 * interval[1]:.1f}%"


def reference_table(merged: SweepResult, commits: dict[str, list[str]]) -> list[str]:
    """The full reference's fidelity points with the seeds folded in (reference-seeds.png, in numbers)."""
    lines = ["", f"## The full reference with seeds (docs/{REFERENCE} and docs/{SEEDS}): fidelity to the paper", "",
             f"JSMA-F per T as the reference report's fidelity section gives it (within ±{fidelity.BAND:.0f} points "
             "plus one std over seeds), each seed's own value, and whether the paper's point lies in the seeds' 95% "
             "prediction interval (where one more training of this recipe would fall: mean ± t(0.975, n-1) x sample "
             "std x sqrt(1 + 1/n)). Every seed attacks the same held-out inputs (the attack's seed is the same), so "
             "the spread is training's. Runs made at commits "
             + "; ".join(f"{', '.join(c)} ({name})" for name, c in commits.items())
             + ". Drawn as reference-seeds.png.", "",
             "| T | seeds | each seed | JSMA-F success (mean ± std) | paper | gap (points) | within the band | "
             "95% prediction interval | paper inside it | saturated |", "|---|---|---|---|---|---|---|---|---|---|"]
    for p in fidelity.points(merged):
        e = merged.at(p["T"])
        own = e.per_seed or [e]
        values = [x.success_rate["softmax"] for x in own]
        interval = prediction_interval(values)
        mean_std = f"{p['ours']:.1f}% ± {p['spread']:.1f}" if len(own) > 1 else f"{p['ours']:.1f}%"
        lines.append(f"| {label(p['T'])} | {','.join(str(x.seed if x.seed is not None else 0) for x in own)} | "
                     f"{', '.join(f'{100 * v:.1f}%' for v in values)} | {mean_std} | "
                     f"{'–' if p['paper'] is None else str(p['paper']) + '%'} | "
                     f"{'–' if p['gap'] is None else format(p['gap'], '+.1f')} | {_yes(p['within'])} | "
                     f"{_interval_text(interval)} | {_yes(_within(p['paper'], interval))} | {_pct(p['saturated'])} |")
    return lines


def table(all_cells: list[Cell], rows: list[dict], missing: list[str], merged: SweepResult | None) -> str:
    lines = ["# The JSMA-F gap at low T: the grid (generated by `python bench/gap_study.py`)", "",
             "Every cell read from the committed sweep.json files under docs/; JSMA-F = JSMA on the deployed "
             "softmax (T = 1), 100 held-out inputs x 9 targets at full length, 20 x 9 in the quick profile.", "",
             "## Cells", "",
             "| T | length | clip | lr | seed | JSMA-F success | saturated softmax | accuracy | JSMA on the logits | "
             "pixels the gradient reaches | dead ReLU units | sweep |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in sorted(all_cells, key=lambda c: (c.temperature, c.length, c.clip, c.schedule, c.seed)):
        if c.temperature not in SEEDED_T:
            continue
        lines.append(f"| {label(c.temperature)} | {c.length} ({c.epochs} epochs) | {c.clip:g} | {c.schedule} | "
                     f"{c.seed} | {_pct(c.jsma_f)} | {_pct(c.saturated)} | {_pct(c.accuracy)} | "
                     f"{_pct(c.jsma_logits)} | {_pct(c.pixel_share)} | {_pct(c.dead_units)} | {c.source} |")
    lines += ["", "## Per configuration: mean ± std over seeds, beside the paper", "",
              "The paper's point inside the seeds' 95% prediction interval (mean ± t(0.975, n-1) x sample std x "
              "sqrt(1 + 1/n)): where one more training of this configuration would fall.", "",
              "| T | length | clip | lr | seeds | JSMA-F success | paper | gap (points) | 95% prediction interval | "
              "paper inside it | saturated | accuracy |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["T"] not in SEEDED_T:
            continue
        paper = "–" if r["paper"] is None else f"{r['paper']}%"
        gap = "–" if r["gap_points"] is None else f"{r['gap_points']:+.1f}"
        lines.append(f"| {label(r['T'])} | {r['length']} | {r['clip']:g} | {r['schedule']} | "
                     f"{','.join(map(str, r['seeds']))} | "
                     f"{100 * r['jsma_f_mean']:.1f}% ± {100 * r['jsma_f_std']:.1f} | {paper} | {gap} | "
                     f"{_interval_text(r['prediction_interval'])} | {_yes(r['paper_within_spread'])} | "
                     f"{_pct(r['saturated_mean'])} | {_pct(r['accuracy_mean'])} |")
    if merged is not None:
        lines += reference_table(merged, {name: _commits(name) for name in (REFERENCE, SEEDS)})
    if missing:
        lines += ["", "Not measured yet (run `bench/gap_study.sh`, then commit the sweep): " + ", ".join(missing) + "."]
    return "\n".join(lines) + "\n"


def figure(all_cells: list[Cell], rows: list[dict], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(1, 1, figsize=(7, 4.2))
    paper = SUCCESS_VS_T["mnist"]
    # (length, clip, constant lr?): the quick profile's and the preset's halving schedules, then Table II's
    configs = [("quick", 5.0, False), ("quick", 1.0, False), ("full", 5.0, False), ("full", 1.0, False),
               ("full", 1.0, True)]
    colors = {2.0: "tab:orange", 5.0: "tab:green"}
    for k, t in enumerate(GRID_T):
        labelled = False
        for j, (length, clip, constant) in enumerate(configs):
            x = j + (k - 0.5) * 0.3
            cs = [c for c in all_cells if c.temperature == t and c.length == length and c.clip == clip
                  and (c.schedule == "constant") == constant]
            if not cs:
                continue
            ys = [100 * c.jsma_f for c in cs]
            ax.scatter([x] * len(ys), ys, s=14, color=colors[t], alpha=0.6)
            ax.plot([x - 0.1, x + 0.1], [statistics.fmean(ys)] * 2, color=colors[t], linewidth=2,
                    label=None if labelled else f"T = {label(t)}")
            labelled = True
        ax.axhline(paper[int(t)], color=colors[t], linestyle="--", linewidth=1, label=f"paper, T = {label(t)}")
    ax.set_xticks(range(len(configs)), [f"{length}\nclip {clip:g}" + ("\nconstant lr" if constant else "")
                                        for length, clip, constant in configs])
    ax.set_ylabel("JSMA-F success (%)")
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    ax.set_title("the grid at T = 2 and T = 5: each seed (dots) and the mean (bar)", fontsize=9)
    _save(fig, path, "; ".join(f"T={label(r['T'])} {r['length']} clip {r['clip']:g} lr {r['schedule']}: "
                               f"{100 * r['jsma_f_mean']:.1f}%" for r in rows if r["T"] in GRID_T))
    plt.close(fig)


GRID_START = "<!-- the grid, written by `python bench/gap_study.py` from the committed sweeps: do not edit -->"
GRID_END = "<!-- end of the grid -->"


def in_notes(notes: str, grid: str) -> str:
    """NOTES.md with grid.md's tables (its sections one level down) between the two markers."""
    if GRID_START not in notes or GRID_END not in notes:
        _refuse(f"docs/gap-study/NOTES.md has lost its grid markers; put back {GRID_START} and {GRID_END}")
    body = "\n".join(("#" + line) if line.startswith("## ") else line for line in grid.splitlines()[2:])
    head, rest = notes.split(GRID_START, 1)
    return f"{head}{GRID_START}\n{body.strip()}\n{GRID_END}{rest.split(GRID_END, 1)[1]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the committed grid.md/grid.json only")
    args = ap.parse_args(argv)
    all_cells, missing = cells()
    rows = summary(all_cells)
    merged = reference_with_seeds()
    text = table(all_cells, rows, missing, merged)
    data = json.dumps({"cells": [c.__dict__ for c in all_cells], "configurations": rows, "missing": missing},
                      indent=2) + "\n"
    notes = in_notes((OUT / "NOTES.md").read_text(), text)
    if args.check:
        same = ((OUT / "grid.md").read_text() == text) and ((OUT / "grid.json").read_text() == data) and \
            (OUT / "NOTES.md").read_text() == notes
        print("grid.md, grid.json and NOTES.md's grid match the sweeps" if same
              else "grid.md, grid.json or NOTES.md's grid differ from the sweeps")
        return 0 if same else 1
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "grid.md").write_text(text)
    (OUT / "grid.json").write_text(data)
    (OUT / "NOTES.md").write_text(notes)
    figure(all_cells, rows, OUT / "grid.png")
    if merged is not None:
        fidelity.figure(merged, OUT / "reference-seeds.png")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
