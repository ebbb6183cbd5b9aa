"""Why JSMA on softmax(z/T) can stay below Carlini & Wagner's ~95% on a distilled student: JSMA
on softmax(z/T') over a range of T' (the training T, the student's measured logit scale over the
baseline's, larger) and two budgets, on the inputs and targets the run's own softmax_T attack used.

    python bench/softmax_t_scale.py SWEEP_DIR --temperature 100 --out docs/DIR/softmax_t_scale

Reads the student's checkpoint and attacks/student-softmax_T.npz of SWEEP_DIR/T-<T> and the
baseline's mean |logit| from SWEEP_DIR/baseline; writes a PNG, a JSON and prints a table.
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.attacks.jsma import ENDED, JSMAConfig, jsma  # noqa: E402
from engine.attacks.outputs import AttackedOutput  # noqa: E402
from engine.sweeps.verdicts import _load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sweep_dir", type=Path)
    ap.add_argument("--temperature", type=float, default=100.0)
    ap.add_argument("--out", required=True, help="path without suffix: .png and .json are written")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run = args.sweep_dir / f"T-{args.temperature:g}"
    net = _load_model(run, "student")
    d = np.load(run / "attacks" / "student-softmax_T.npz")
    x, targets = torch.from_numpy(d["x"]), torch.from_numpy(d["target"])
    scale = (json.loads((run / "summary.json").read_text())["mean_abs_logit"]["student"]
             / json.loads((args.sweep_dir / "baseline" / "summary.json").read_text())["mean_abs_logit"]["baseline"])
    t = args.temperature
    temps = sorted({t, round(scale, 1), 3 * t, 10 * t})
    with torch.no_grad():
        z = net(x[::9])  # each input once (the attacks repeat it for its 9 targets)
    rows = []
    for tp in temps:
        saturated = float((torch.softmax(z / tp, 1).max(1).values == 1.0).float().mean())
        for upsilon in (0.145, 0.30):
            t0 = time.perf_counter()
            r = jsma(AttackedOutput(net, "softmax_T", tp), x, targets, JSMAConfig(upsilon=upsilon, batch_size=len(x)))
            rows.append({"T_prime": tp, "upsilon": upsilon, "success": float(r.success.float().mean()),
                         "saturated_share": saturated, "seconds": time.perf_counter() - t0,
                         "ended": {name: int((r.ended == i).sum()) for i, name in enumerate(ENDED)}})
            print(f"T'={tp:g} Upsilon {100 * upsilon:.1f}%: success {100 * rows[-1]['success']:.1f}% "
                  f"(softmax(z/T') saturated on {100 * saturated:.0f}% of inputs)", flush=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for upsilon, style in ((0.145, "o-"), (0.30, "s--")):
        pts = [r for r in rows if r["upsilon"] == upsilon]
        ax.plot([r["T_prime"] for r in pts], [100 * r["success"] for r in pts], style,
                label=f"JSMA on softmax(z/T'), Upsilon {100 * upsilon:.1f}%")
    sat = [r for r in rows if r["upsilon"] == 0.145]
    ax.plot([r["T_prime"] for r in sat], [100 * r["saturated_share"] for r in sat], "k:",
            label="softmax(z/T') saturated")
    ax.axvline(scale, color="gray", lw=0.8)
    ax.annotate(f"student / baseline logit scale = {scale:.0f}", (scale, 5), fontsize=7, rotation=90, ha="right")
    ax.set_xscale("log")
    ax.set_xlabel("T' (log scale)")
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"student distilled at T={t:g}: JSMA on softmax(z/T'), {len(x)} attacks", fontsize=9)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out.with_suffix(".png"), dpi=110)
    out.with_suffix(".json").write_text(json.dumps({
        "run": str(run), "attacks": len(x), "logit_scale_vs_baseline": scale, "rows": rows,
        "torch": torch.__version__, "machine": platform.machine(), "threads": args.threads}, indent=1))
    print(f"\nlogit scale student / baseline: {scale:.1f} (T = {t:g})")
    print("| T' | Upsilon | JSMA success | ended: no pair / budget | softmax(z/T') saturated |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['T_prime']:g} | {100 * r['upsilon']:.1f}% | {100 * r['success']:.1f}% | "
              f"{r['ended']['no_pair']} / {r['ended']['budget']} | {100 * r['saturated_share']:.0f}% |")


if __name__ == "__main__":
    main()
