"""Our verdict beside the anchors researchers use, on the known-answer controls.

For each control of engine/masking/controls.py (built from the same trained models, on the same held-out
inputs and targets as bench/verdict_controls.py): our verdict (read from bench/results/verdict-controls-
PRESET.json, measured on these models by `python bench/verdict_controls.py PRESET --run RUN --adversarial
ADV`), ART's `loss_gradient_check` (the share of inputs whose loss gradient is zero, nan or inf: ART's flag
for masked gradients), and torchattacks' AutoAttack (standard version, L-inf eps 0.1 by default: MNIST's
usual 0.3 breaks every digits control) robust accuracy beside the robust accuracy our remedy leaves. Which
tool flags which control, right or wrong, and the seconds each took.

    pip install -e '.[peers]'     # adversarial-robustness-toolbox, torchattacks (pins requests 2.25: a venv)
    python bench/judge_peers.py --run DIR --adversarial DIR [--preset digits] [--n 40] [--only CONTROL]

Writes bench/results/judge-peers-PRESET-linfEPS.json and docs/judge-peers.md (a table per preset).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "judge-peers.md"
# MNIST's L-inf budget in AutoAttack's tables is 0.3; on digits (8x8 drawn at 28x28) it breaks every control,
# the adversarially trained one (PGD at 0.2) included, and tells nothing: 0.1 is the default here
AA_EPS = 0.1
ART_FLAG = 0.2  # ART flags a control when more than this share of inputs has a bad loss gradient (our SHARE)


def art_check(model, x, y) -> tuple[float, float]:
    """(share of inputs with a zero, nan or inf loss gradient, seconds) by ART's loss_gradient_check."""
    import torch
    from art.estimators.classification import PyTorchClassifier
    from art.metrics.gradient_check import loss_gradient_check

    t0 = time.perf_counter()
    clf = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                            nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")
    one_hot = torch.nn.functional.one_hot(y, 10).float().numpy()  # ART 1.20 reduces labels along dim 1
    flags = loss_gradient_check(clf, x.numpy(), one_hot, verbose=False)
    return float(flags.any(axis=1).mean()), time.perf_counter() - t0


def autoattack(model, x, y, eps: float) -> tuple[float, float]:
    """(robust accuracy under torchattacks' AutoAttack, standard version, L-inf eps; seconds)."""
    import torch
    import torchattacks

    t0 = time.perf_counter()
    attack = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=10, seed=0)
    x_adv = attack(x, y)
    with torch.no_grad():
        robust = float((model(x_adv).argmax(1) == y).float().mean())
    return robust, time.perf_counter() - t0


def remedy_robust_accuracy(row: dict) -> float | None:
    """1 - the share of targets the best of the matching remedies reached, from our verdict's remedy words
    ("CW-L2 on estimated gradients reached k/n targets"; what CW-L2 reached through the model's own backward
    is not a remedy), for a masked control; None where no remedy ran."""
    import re

    reached = [int(k) / int(n) for part in (row.get("remedy") or "").split(";") if "own backward" not in part
               for k, n in re.findall(r"reached (\d+)/(\d+) targets", part)]
    return 1 - max(reached) if reached else None


def measure(args: argparse.Namespace) -> None:
    import torch
    from verdict_controls import load

    from engine.data import load_dataset
    from engine.masking.controls import CONTROLS

    ours = json.loads((RESULTS / f"verdict-controls-{args.preset}.json").read_text())
    baseline, preset = load(args.run, "baseline")
    models = {"baseline": baseline, "teacher": load(args.run, "teacher")[0], "student": load(args.run, "student")[0],
              "adversarial": load(args.adversarial, "baseline")[0], "teacher_T": preset.distillation.temperature}
    data = load_dataset(preset.data)
    with torch.no_grad():
        ok = (baseline(data.x_test).argmax(1) == data.y_test) & (models["student"](data.x_test).argmax(1)
                                                                 == data.y_test)
    x, y = data.x_test[ok][: args.n], data.y_test[ok][: args.n]
    by_name = {r["control"]: r for r in ours["rows"]}
    rows = []
    for control in CONTROLS:
        if args.only and control.name not in args.only or control.name not in by_name:
            continue
        model = control.build(models).eval()
        ours_row = by_name[control.name]
        art_share, art_seconds = art_check(model, x, y)
        robust, aa_seconds = autoattack(model, x, y, args.eps)
        row = {"control": control.name, "masked_by_construction": control.masked,
               "ours": ours_row["verdict"], "ours_right": ours_row["right"], "ours_seconds": ours_row["seconds"],
               "ours_remedy_robust_accuracy": remedy_robust_accuracy(ours_row),
               "art_bad_gradient_share": art_share, "art_flags": art_share > ART_FLAG,
               "art_right": (art_share > ART_FLAG) == control.masked, "art_seconds": art_seconds,
               "autoattack_robust_accuracy": robust, "autoattack_seconds": aa_seconds}
        rows.append(row)
        print(f"{control.name:<30} ours {row['ours']:<20} ART {100 * art_share:5.1f}% bad gradients "
              f"({art_seconds:.1f} s)  AutoAttack robust {100 * robust:5.1f}% ({aa_seconds:.0f} s)", flush=True)
    import art
    import torchattacks

    record = {"preset": args.preset, "n": len(x), "torch": torch.__version__, "python": platform.python_version(),
              "art": art.__version__, "torchattacks": torchattacks.__version__, "autoattack_eps": args.eps,
              "art_flag_share": ART_FLAG, "ours_measured_n": ours["n"], "rows": rows}
    out = RESULTS / f"judge-peers-{args.preset}-linf{args.eps:g}.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(out)
    print(f"wrote {out.relative_to(ROOT)}")
    write_docs()


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def write_docs() -> None:
    lines = ["# Our verdict beside the anchors (ART, torchattacks' AutoAttack)", "",
             "Regenerated by `python bench/judge_peers.py` (bench/results/judge-peers-PRESET-linfEPS.json). Each "
             "row is one known-answer control (docs/verdict-controls.md) on the same inputs. **Ours**: the "
             "verdict (right or wrong against the construction) and the seconds it took. **ART**: "
             "`loss_gradient_check`'s share of "
             f"inputs with a zero, nan or inf loss gradient; it flags masking above {100 * ART_FLAG:.0f}%. "
             "**AutoAttack** (torchattacks, standard version, at the L-inf eps of each table): the robust accuracy it "
             "leaves; it gives no verdict, and on a masked model a high robust accuracy is the gradients' "
             "doing. Beside it, the robust accuracy our remedy leaves (the share of targets it did not reach, "
             "L2, unbounded).", ""]
    for path in sorted(RESULTS.glob("judge-peers-*.json")):
        r = json.loads(path.read_text())
        lines += [f"## {r['preset']} (n = {r['n']}, AutoAttack at L-inf eps {r['autoattack_eps']:g}; torch "
                  f"{r['torch']}, ART {r['art']}, torchattacks {r['torchattacks']})", "",
                  "| control | by construction | ours | ART bad gradients | ART | AutoAttack robust accuracy | our "
                  "remedy leaves | seconds: ours / ART / AutoAttack |", "|---|---|---|---|---|---|---|---|"]
        for row in r["rows"]:
            truth = "masked" if row["masked_by_construction"] else "not masked"
            ours = f"**{row['ours']}**" + ("" if row["ours_right"] else " (WRONG)")
            art = ("flags" if row["art_flags"] else "no flag") + ("" if row["art_right"] else " (WRONG)")
            ours_s = "–" if row["ours_seconds"] is None else f"{row['ours_seconds']:.0f}"
            lines.append(f"| {row['control']} | {truth} | {ours} | {_pct(row['art_bad_gradient_share'])} | {art} | "
                         f"{_pct(row['autoattack_robust_accuracy'])} | {_pct(row['ours_remedy_robust_accuracy'])} | "
                         f"{ours_s} / {row['art_seconds']:.1f} / {row['autoattack_seconds']:.0f} |")
        right_ours = sum(x["ours_right"] for x in r["rows"])
        right_art = sum(x["art_right"] for x in r["rows"])
        lines += ["", f"Right: ours {right_ours} of {len(r['rows'])}, ART {right_art} of {len(r['rows'])}.", ""]
    DOCS.write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {DOCS.relative_to(ROOT)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="digits")
    ap.add_argument("--run", type=Path, help="the run bench/verdict_controls.py judged (baseline, teacher, student)")
    ap.add_argument("--adversarial", type=Path, help="its adversarially trained run")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--eps", type=float, default=AA_EPS, help=f"AutoAttack's L-inf budget (default {AA_EPS:g})")
    ap.add_argument("--only", action="append", default=[], metavar="CONTROL")
    ap.add_argument("--docs", action="store_true", help="regenerate docs/judge-peers.md from the JSON files")
    args = ap.parse_args()
    if args.docs:
        write_docs()
        return
    if args.run is None or args.adversarial is None:
        ap.error("--run and --adversarial: the runs bench/verdict_controls.py judged")
    measure(args)


if __name__ == "__main__":
    main()
