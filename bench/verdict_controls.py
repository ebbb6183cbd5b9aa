"""The verdict on models whose answer is known: a confusion matrix with each verdict's evidence.

Trains (with the real engine, in fresh processes) a distilled pair at T = 100 and an adversarially
trained Table I net on PRESET, wraps the baseline into the controls of engine/masking/controls.py,
attacks every control on the same held-out inputs and targets, and judges it.

    python bench/verdict_controls.py [PRESET] [--n 30] [--quick] [--run DIR] [--adversarial DIR]

--run / --adversarial reuse finished runs (a run with baseline and student at T = 100; a run whose
baseline was trained with training.adversarial_epsilon). Writes bench/results/verdict-controls-PRESET.json
and prints the matrix and each control's checks.
"""

from __future__ import annotations

import argparse
import json
import platform
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
    from engine.runs.rundir import RunDir

    rd = RunDir.open(run_dir)
    preset = preset_from_toml(rd.read_preset_toml())
    tensors, meta = rd.load_tensors(phase)
    net = build_network(preset.network.arch, preset.network.dropout)
    unpack_state(tensors, meta, net, None)
    return net.eval(), preset


def matrix_lines(rows) -> list[str]:
    from engine.masking.controls import confusion

    m = confusion(rows)
    verdicts = ("masked", "no sign of masking", "inconclusive")
    lines = ["| truth \\ verdict | " + " | ".join(verdicts) + " |", "|---|" + "---|" * len(verdicts)]
    for truth, counts in m.items():
        lines.append(f"| {truth} | " + " | ".join(str(counts.get(v, 0)) for v in verdicts) + " |")
    return lines


def main() -> None:
    import torch

    from engine.attacks.cw_l2 import CWL2Config
    from engine.attacks.simba import SimBAConfig
    from engine.data import load_dataset
    from engine.masking.controls import judge_controls, judged_right
    from engine.masking.measure import MeasureConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("preset", nargs="?", default="digits")
    ap.add_argument("--n", type=int, default=30, help="held-out inputs, one seeded random target each")
    ap.add_argument("--quick", action="store_true", help="quick training (8 epochs, 800 images) for a smoke run")
    ap.add_argument("--run", type=Path, help="a finished run with baseline and student (T = 100)")
    ap.add_argument("--adversarial", type=Path, help="a finished run with an adversarially trained baseline")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more preset overrides")
    ap.add_argument("--json", type=Path, help="default bench/results/verdict-controls-PRESET.json")
    args = ap.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        sets = ["device='cpu'", "distillation.temperature=100", "attack.enabled=false",
                *(QUICK_TRAINING if args.quick else []), *args.set]
        run = args.run or Path(tmp) / "distilled"
        if args.run is None:
            print(f"training baseline, teacher, student at T = 100 on {args.preset} ...", file=sys.stderr)
            engine_run(args.preset, run, sets)
        adv = args.adversarial or Path(tmp) / "adversarial"
        if args.adversarial is None:
            print("training the adversarially trained net ...", file=sys.stderr)
            engine_run(args.preset, adv, [*sets, *ADVERSARIAL])
        baseline, preset = load(run, "baseline")
        student, _ = load(run, "student")
        adversarial, _ = load(adv, "baseline")
        trained = time.perf_counter() - t0
        data = load_dataset(preset.data)
        with torch.no_grad():
            ok = (baseline(data.x_test).argmax(1) == data.y_test) & (student(data.x_test).argmax(1) == data.y_test)
        x, y = data.x_test[ok][: args.n], data.y_test[ok][: args.n]
        gen = torch.Generator().manual_seed(preset.attack.seed + 7919)
        targets = (y + torch.randint(1, 10, (len(y),), generator=gen)) % 10
        acfg = preset.attack
        cfg = MeasureConfig(upsilon=acfg.upsilon, cw=CWL2Config(**acfg.cw_l2.model_dump(exclude={"samples"})),
                            simba=SimBAConfig(epsilon=acfg.simba_epsilon, max_queries=acfg.simba_queries),
                            kappas=tuple(acfg.transfer_kappas))
        rows = judge_controls({"baseline": baseline, "student": student, "adversarial": adversarial}, x, y, targets,
                              cfg, preset.distillation.temperature,
                              on_judged=lambda c, v: print(f"{c.name}: {v.verdict}", file=sys.stderr))
        models = {"baseline": baseline, "student": student, "adversarial": adversarial}
        with torch.no_grad():  # held-out accuracy of each control, as deployed
            accuracy = {c.name: float((c.build(models).eval()(data.x_test).argmax(1) == data.y_test).float().mean())
                        for c, _v in rows}
    right = sum(judged_right(c, v.verdict) for c, v in rows)
    print(f"\nverdict controls on {args.preset}: {right}/{len(rows)} judged right, n = {len(x)} inputs "
          f"(torch {torch.__version__}, {time.perf_counter() - t0:.0f} s)\n")
    print("\n".join(matrix_lines([(c, v.verdict) for c, v in rows])))
    for c, v in rows:
        print(f"\n{c.name} ({'masked' if c.masked else 'not masked'} by construction: {c.why}; held-out accuracy "
              f"{100 * accuracy[c.name]:.1f}%) -> "
              f"{v.verdict.upper()}{'' if judged_right(c, v.verdict) else '  <- WRONG'}\n  {v.text}")
        for k in v.checks:
            print(f"    {k.status.upper():<9} {k.name}: {k.evidence}")
    out = args.json or ROOT / "bench" / "results" / f"verdict-controls-{args.preset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"preset": args.preset, "quick": args.quick, "n": len(x), "torch": torch.__version__,
              "python": platform.python_version(), "seconds": time.perf_counter() - t0, "training_seconds": trained,
              "sets": args.set, "right": right, "controls": len(rows), "accuracy": accuracy,
              "matrix": matrix_lines([(c, v.verdict) for c, v in rows]),
              "rows": [{"control": c.name, "masked_by_construction": c.masked, "why": c.why, "verdict": v.verdict,
                        "right": judged_right(c, v.verdict), "text": v.text,
                        "checks": [k.__dict__ for k in v.checks]} for c, v in rows]}
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(record, indent=2))
    tmp_out.replace(out)
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
