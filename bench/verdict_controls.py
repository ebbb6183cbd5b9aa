"""The verdict on models whose answer is known: a confusion matrix with each verdict's evidence.

Trains (with the real engine, in fresh processes) a distilled pair at T = 100 and an adversarially
trained Table I net on PRESET, builds the known-answer controls of engine/masking/controls.py from them
(the teacher, trained apart on the same data, is every control's transfer source and the straight-through
control's foreign backward), attacks every control on the same held-out inputs and targets, judges it,
and for each masked one runs the matching remedy.

    python bench/verdict_controls.py [PRESET] [--n 40] [--quick] [--run DIR] [--adversarial DIR] [--only NAME]
    python bench/verdict_controls.py --docs     # docs/verdict-controls.md from the JSON files below

--keep DIR makes a long measurement resumable: the trained runs stay in DIR (reused when finished) and each
judged control's row is appended to DIR/rows-<settings digest>.jsonl as soon as it is judged; run the same
command again after an interruption and only the controls without a row are attacked.
--run / --adversarial reuse finished runs (a run with baseline, teacher and student at T = 100; a run whose
baseline was trained with training.adversarial_epsilon). The comparators are the preset's attack.checks and
the decision-based HopSkipJump (--checks to choose). Writes bench/results/verdict-controls-PRESET.json and
prints the matrix and each control's checks, with the seconds each control took.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The adversarially trained control: PGD at L-inf 0.2, 5 steps, from a random start (Madry et al.).
ADVERSARIAL = ["distillation.phases=['baseline']", "training.adversarial_epsilon=0.2", "training.adversarial_steps=5",
               "attack.enabled=false"]
QUICK_TRAINING = ["training.epochs=8", "data.train_limit=800", "data.test_limit=200", "training.optimizer='adam'",
                  "training.lr=0.002", "training.lr_decay=1.0"]
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "verdict-controls.md"


def engine_run(preset: str, run_dir: Path, sets: list[str]) -> None:
    args = [a for s in sets for a in ("--set", s)]
    proc = subprocess.run([sys.executable, "-m", "engine", "run", preset, "--quiet", "--run-dir", str(run_dir), *args],
                          cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"training {run_dir.name} failed: {proc.stderr.strip()[-400:]}")


def load(run_dir: Path, phase: str):
    from engine.checkpoints import unpack_state
    from engine.networks import build_network
    from engine.presets import preset_from_toml
    from engine.record.rundir import RunDir

    rd = RunDir.open(run_dir)
    preset = preset_from_toml(rd.read_preset_toml())
    tensors, meta = rd.load_tensors(phase)
    net = build_network(preset.network.arch, preset.network.dropout)
    unpack_state(tensors, meta, net, None)
    return net.eval(), preset


def matrix_lines(rows: list[tuple[bool, str]]) -> list[str]:
    """rows: (masked by construction, verdict)."""
    verdicts = ("masked", "no sign of masking", "inconclusive")
    counts = {"masked": {}, "not masked": {}}
    for masked, verdict in rows:
        truth = counts["masked" if masked else "not masked"]
        truth[verdict] = truth.get(verdict, 0) + 1
    lines = ["| truth \\ verdict | " + " | ".join(verdicts) + " |", "|---|" + "---|" * len(verdicts)]
    for truth, c in counts.items():
        lines.append(f"| {truth} | " + " | ".join(str(c.get(v, 0)) for v in verdicts) + " |")
    return lines


def measure(args: argparse.Namespace) -> None:
    import torch

    from engine.data import load_dataset
    from engine.masking.controls import CONTROLS, judge_controls
    from engine.masking.from_run import measure_config

    torch.set_num_threads(max(torch.get_num_threads(), 1))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        sets = ["device='cpu'", "distillation.temperature=100", "attack.enabled=false",
                *(QUICK_TRAINING if args.quick else []), *args.set]
        keep = args.keep or Path(tmp)
        keep.mkdir(parents=True, exist_ok=True)
        run = args.run or keep / "distilled"
        trained_here = False
        if args.run is None and not (run / "summary.json").exists():
            print(f"training baseline, teacher, student at T = 100 on {args.preset} ...", file=sys.stderr)
            shutil.rmtree(run, ignore_errors=True)  # an interrupted training: started again
            engine_run(args.preset, run, sets)
            trained_here = True
        adv = args.adversarial or keep / "adversarial"
        if args.adversarial is None and not (adv / "summary.json").exists():
            print("training the adversarially trained net ...", file=sys.stderr)
            shutil.rmtree(adv, ignore_errors=True)
            engine_run(args.preset, adv, [*sets, *ADVERSARIAL])
            trained_here = True
        baseline, preset = load(run, "baseline")
        models = {"baseline": baseline, "teacher": load(run, "teacher")[0], "student": load(run, "student")[0],
                  "adversarial": load(adv, "baseline")[0], "teacher_T": preset.distillation.temperature}
        trained = time.perf_counter() - t0
        timing = keep / "training-seconds.json"  # a resumed measurement reports the training it reused
        if args.run is None and args.adversarial is None:
            if trained_here:
                timing.write_text(json.dumps(trained))
            elif timing.exists():
                trained = json.loads(timing.read_text())
        data = load_dataset(preset.data)
        with torch.no_grad():
            ok = (baseline(data.x_test).argmax(1) == data.y_test) & (models["student"](data.x_test).argmax(1)
                                                                     == data.y_test)
        x, y = data.x_test[ok][: args.n], data.y_test[ok][: args.n]
        gen = torch.Generator().manual_seed(preset.attack.seed + 7919)
        targets = (y + torch.randint(1, 10, (len(y),), generator=gen)) % 10
        checks = tuple(args.checks.split(",")) if args.checks else (*preset.attack.checks, "decision")
        cfg = measure_config(preset.attack.model_copy(update={"checks": list(dict.fromkeys(checks))}))
        # the settings a kept row was measured under: a row of other settings is never reused
        digest = hashlib.sha256(json.dumps([args.preset, args.quick, len(x), sets, list(cfg.checks),
                                            torch.__version__]).encode()).hexdigest()[:12]
        kept_file = keep / f"rows-{digest}.jsonl"
        kept = {r["control"]: r for r in map(json.loads, kept_file.read_text().splitlines())} \
            if kept_file.exists() else {}
        if kept:
            print(f"resuming: {len(kept)} controls already judged in {kept_file}", file=sys.stderr)
        wanted = [c.name for c in CONTROLS if not args.only or c.name in args.only]
        started = [time.perf_counter()]

        def judged(c, v) -> None:
            row = {"control": c.name, "masked_by_construction": c.masked, "why": c.why,
                   "expected": list(c.expected) or ["masked" if c.masked else "no sign of masking"],
                   "verdict": v.verdict, "right": c.right(v.verdict), "text": v.text, "remedy": v.remedy,
                   "seconds": time.perf_counter() - started[0], "checks": [k.__dict__ for k in v.checks]}
            started[0] = time.perf_counter()
            kept[c.name] = row
            with kept_file.open("a") as f:  # one line per control, appended whole: an interruption loses at most one
                f.write(json.dumps(row) + "\n")
            print(f"{c.name}: {v.verdict} ({row['seconds']:.0f} s)", file=sys.stderr, flush=True)

        todo = tuple(name for name in wanted if name not in kept)
        if todo:
            judge_controls(models, x, y, targets, cfg, preset.distillation.temperature, pool=data.x_test,
                           on_judged=judged, only=todo)
        rows = [kept[name] for name in wanted if name in kept]
        by_name = {c.name: c for c in CONTROLS}
        with torch.no_grad():  # held-out accuracy of each control, as deployed
            accuracy = {r["control"]: float((by_name[r["control"]].build(models).eval()(data.x_test).argmax(1)
                                             == data.y_test).float().mean()) for r in rows}
    right = sum(r["right"] for r in rows)
    matrix = matrix_lines([(r["masked_by_construction"], r["verdict"]) for r in rows])
    print(f"\nverdict controls on {args.preset}: {right}/{len(rows)} judged right, n = {len(x)} inputs "
          f"(torch {torch.__version__}, {time.perf_counter() - t0:.0f} s)\n")
    print("\n".join(matrix))
    for r in rows:
        print(f"\n{r['control']} ({'masked' if r['masked_by_construction'] else 'not masked'} by construction: "
              f"{r['why']}; held-out accuracy {100 * accuracy[r['control']]:.1f}%) -> {r['verdict'].upper()}"
              f"{'' if r['right'] else '  <- WRONG'}\n  {r['text']}")
        for k in r["checks"]:
            print(f"    {k['status'].upper():<9} {k['name']}: {k['evidence']}")
    out = args.json or RESULTS / f"verdict-controls-{args.preset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    # seconds: the controls' own (summed, across resumed processes) plus this process's training and set-up
    record = {"preset": args.preset, "quick": args.quick, "n": len(x), "torch": torch.__version__,
              "python": platform.python_version(), "seconds": trained + sum(r["seconds"] for r in rows),
              "training_seconds": trained, "sets": args.set, "checks": list(cfg.checks), "right": right,
              "controls": len(rows), "accuracy": accuracy, "matrix": matrix, "rows": rows}
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(record, indent=2))
    tmp_out.replace(out)
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


def _decided_by(row: dict) -> str:
    shown = [k for k in row["checks"] if k["status"] in ("fired", "undecided")]
    return "; ".join(f"{k['name']} {k['status']}: {k['evidence'].rsplit(': ', 1)[-1]}" for k in shown) or "all clear"


def docs_section(record: dict) -> list[str]:
    """The matrix and one row per control, from a bench JSON."""
    lines = [f"**{record['right']} of {record['controls']} controls judged right** (n = {record['n']} held-out inputs, "
             f"comparators: {', '.join(record['checks'])}; torch {record['torch']}, {record['seconds']:.0f} s of "
             f"which training {record['training_seconds']:.0f} s)."
             + (f" Note: {record['note']}." if record.get("note") else ""), "", *record["matrix"], "",
             "| control | by construction | held-out accuracy | verdict | the checks that decided it | what the "
             "matching remedy reached | seconds |", "|---|---|---|---|---|---|---|"]
    for r in record["rows"]:
        truth = "masked" if r["masked_by_construction"] else "not masked"
        if not r["masked_by_construction"] and len(r["expected"]) > 1:
            truth = "not masked (attack failure)"
        mark = "" if r["right"] else " (WRONG)"
        seconds = "–" if r.get("seconds") is None else f"{r['seconds']:.0f}"
        lines.append(f"| {r['control']} | {truth} | {100 * record['accuracy'][r['control']]:.1f}% | "
                     f"**{r['verdict']}**{mark} | {_decided_by(r)} | {r.get('remedy') or '–'} | {seconds} |")
    return lines


# Controls judged again after a change to the engine, on the same preset, inputs and budget (`--only CONTROL
# --json FILE`): shown under their preset's table, which keeps the row of its own measurement.
REJUDGED = {"digits": [("eot-remedy-noisy-digits.json", "the EOT remedy's majority decision (commit 0a211b4)")],
            "mnist-t10k": [("eot-remedy-noisy-mnist-t10k.json", "the EOT remedy's majority decision (commit 0a211b4)")]}


def rejudged_lines(preset: str) -> list[str]:
    lines = []
    for name, change in REJUDGED.get(preset, []):
        record = json.loads((RESULTS / name).read_text())
        for r in record["rows"]:
            lines.append(f"- **{r['control']}** judged again after {change} ({name}, n = {record['n']}, "
                         f"{r['seconds']:.0f} s): **{r['verdict']}**{'' if r['right'] else ' (WRONG)'}; "
                         f"the remedy: {r.get('remedy') or '–'}.")
    return ["Judged again since:", "", *lines, ""] if lines else []


def write_docs() -> None:
    head = ["# The verdict on known-answer controls", "",
            "Regenerated by `python bench/verdict_controls.py --docs` from the JSON of each preset's measurement "
            "(bench/results/verdict-controls-PRESET.json, made by `python bench/verdict_controls.py PRESET`). "
            "Thirteen controls whose answer is fixed by construction (engine/masking/controls.py): five not masked "
            "(the baseline, its logits x 0.05, an adversarially trained net, the baseline with input noise of "
            "sigma 1e-6 at every call, the baseline attacked by a badly tuned CW-L2) and eight masked (the distilled "
            "T = 100 student, logits x 1000, 8-level input quantisation, input noise of sigma 0.1, and four whose "
            "gradient is non-zero, deterministic and wrong: the teacher's backward under the baseline's forward, "
            "the input gradient kept on 10% of the pixels, every ReLU replaced by k-winners-take-all, a backward "
            "half the baseline's and half the teacher's). The badly tuned CW-L2 is an attack failure: "
            "\"inconclusive\" (the attack failed) and \"no sign of masking\" (its escalations repaired it) are both "
            "right; \"masked\" is not. Each control is attacked on the same inputs and targets; the teacher (a "
            "network trained apart on the same data, as a run's surrogate) is every control's transfer source. "
            "The rules: docs/verdict.md.", ""]
    body: list[str] = []
    for path in sorted(RESULTS.glob("verdict-controls-*.json")):
        record = json.loads(path.read_text())
        if "checks" not in record:  # measured before the checks of issue 28: not these controls
            continue
        title = record["preset"] + (" (quick profile)" if record["quick"] else "")
        sets = " ".join(f"--set \"{s}\"" for s in record["sets"])
        body += [f"## {title}", "", f"`python bench/verdict_controls.py {record['preset']} --n {record['n']}"
                 + (" --quick" if record["quick"] else "") + (f" {sets}" if sets else "") + f"` ({path.name}).", "",
                 *docs_section(record), "", *rejudged_lines(record["preset"])]
    DOCS.write_text("\n".join(head + body).rstrip() + "\n")
    print(f"wrote {DOCS.relative_to(ROOT)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("preset", nargs="?", default="digits")
    ap.add_argument("--n", type=int, default=40, help="held-out inputs, one seeded random target each")
    ap.add_argument("--quick", action="store_true", help="quick training (8 epochs, 800 images) for a smoke run")
    ap.add_argument("--run", type=Path, help="a finished run with baseline, teacher and student (T = 100)")
    ap.add_argument("--adversarial", type=Path, help="a finished run with an adversarially trained baseline")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more preset overrides")
    ap.add_argument("--checks", help="comparators, comma-separated (default: the preset's attack.checks and decision)")
    ap.add_argument("--only", action="append", default=[], metavar="CONTROL", help="judge only this control")
    ap.add_argument("--keep", type=Path, help="keep the trained runs and each judged control here: resumable")
    ap.add_argument("--json", type=Path, help="default bench/results/verdict-controls-PRESET.json")
    ap.add_argument("--docs", action="store_true", help="regenerate docs/verdict-controls.md from the JSON files")
    args = ap.parse_args()
    if args.docs:
        write_docs()
    else:
        measure(args)


if __name__ == "__main__":
    main()
