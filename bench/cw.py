"""Carlini & Wagner attacks, ours vs torchattacks 3.5 CW (L2) and ART 1.20 CarliniL2Method /
CarliniL0Method, at equal settings, side by side in one run: attacks/s, success, mean L2 / L0.

The model and inputs are bench/jsma.py's (the Table I MNIST net trained on MNIST-t10k, seeded),
each input against one seeded random wrong target (C&W's average case). Every method runs in its
own process with 2 CPU threads. Success and distances are measured the same way for every method:
the model's prediction on the returned image (== target), L2 over all values, L0 = pixels changed
by more than 1e-4.

Settings compared (each row says which knobs are equal and which rule differs):
  l2-fixed-c   1 binary step, c = 10, 1,000 iterations, lr 0.01      ours | torchattacks | ART
  l2-search    5 binary steps from c = 0.01, 1,000 iterations each   ours | ART
  l0           lr 0.01, 200 iterations per constant, c from 0.01    ours | ART

    pip install -e '.[peers]'
    python bench/cw.py [--inputs 20] [--l0-inputs 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
RESULTS = ROOT / "bench" / "results"

SETTINGS = {
    "l2-fixed-c": {"binary_search_steps": 1, "initial_const": 10.0, "max_iterations": 1000, "learning_rate": 0.01},
    "l2-search": {"binary_search_steps": 5, "initial_const": 1e-2, "max_iterations": 1000, "learning_rate": 0.01},
    "l0": {"max_iterations": 200, "initial_const": 1e-2, "learning_rate": 0.01},
}
RULES = {
    ("l2-fixed-c", "torchattacks"): "early stop is batch-wide (the first stalled check returns the whole batch); "
                                    "w starts at atanh(2x-1), infinite at 0/1 pixels, so those pixels never move",
    ("l2-fixed-c", "art"): "a line search over the step size (up to 5 halvings / doublings per iteration) "
                           "instead of Adam",
    ("l2-search", "art"): "line search instead of Adam; c x 10 / midpoint search as ours",
    ("l0", "art"): "each round runs a full L2 binary search on the allowed pixels and freezes one pixel "
                   "(ours: c doubling per solve, and up to 0.3 sqrt(changed) pixels per round, as the reference)",
}


class _Float32(torch.nn.Module):
    """ART's L0 hands the model float64 arrays: cast them, so every method runs the same float32 net."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.float())


def _inputs(n: int, device: str):
    from jsma import MODEL, _data, _model, train_model

    if not MODEL.exists():
        train_model()
    data = _data()
    net = _model(device)
    with torch.no_grad():
        ok = net(data.x_test.to(device)).argmax(1).cpu() == data.y_test
    chosen = torch.nonzero(ok).squeeze(1)[:n]
    y = data.y_test[chosen]
    offset = torch.randint(1, 10, (len(y),), generator=torch.Generator().manual_seed(0))
    return net, data.x_test[chosen], (y + offset) % 10


def run_one(case: str, method: str, n: int, device: str) -> dict:
    torch.set_num_threads(2)
    net, x, t = _inputs(n, device)
    for p in net.parameters():
        p.requires_grad_(False)
    s = SETTINGS[case]
    t0 = time.perf_counter()
    if method == "defdistill":
        if case == "l0":
            from engine.attacks.cw_l0 import CWL0Config, cw_l0

            x_adv = cw_l0(net, x, t, CWL0Config(max_iterations=s["max_iterations"], initial_const=s["initial_const"],
                                                learning_rate=s["learning_rate"])).x_adv
        else:
            from engine.attacks.cw_l2 import CWL2Config, cw_l2

            x_adv = cw_l2(net, x, t, CWL2Config(**s)).x_adv
    elif method == "torchattacks":
        import torchattacks

        atk = torchattacks.CW(net, c=s["initial_const"], kappa=0, steps=s["max_iterations"], lr=s["learning_rate"])
        atk.set_mode_targeted_by_label(quiet=True)
        x_adv = atk(x.to(device), t.to(device)).cpu()
    elif method == "art":
        import numpy as np
        from art.attacks.evasion import CarliniL0Method, CarliniL2Method
        from art.estimators.classification import PyTorchClassifier

        clf = PyTorchClassifier(model=_Float32(net), loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 28, 28),
                                nb_classes=10, clip_values=(0.0, 1.0), device_type="gpu" if device == "cuda" else "cpu")
        cls = CarliniL0Method if case == "l0" else CarliniL2Method
        kw = {"binary_search_steps": s.get("binary_search_steps", 5)}
        atk = cls(clf, confidence=0.0, targeted=True, learning_rate=s["learning_rate"], max_iter=s["max_iterations"],
                  initial_const=s["initial_const"], batch_size=len(x), verbose=False, **kw)
        x_adv = torch.from_numpy(atk.generate(x.numpy(), y=np.eye(10, dtype=np.float32)[t.numpy()])).float()
    else:
        raise SystemExit(f"unknown method {method}")
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        success = net(x_adv.to(device)).argmax(1).cpu() == t
    d = x_adv - x
    l2 = d.flatten(1).norm(dim=1)
    l0 = (d.abs() > 1e-4).flatten(1).sum(1).float()
    return {"case": case, "method": method, "device": device, "n_attacks": len(x), "seconds": seconds,
            "attacks_per_second": len(x) / seconds, "success_rate": float(success.float().mean()),
            "mean_l2": float(l2[success].mean()) if success.any() else None,
            "mean_l0": float(l0[success].mean()) if success.any() else None,
            "settings": s, "rule_difference": RULES.get((case, method), "")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", type=int, default=20)
    ap.add_argument("--l0-inputs", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cases", default="l2-fixed-c,l2-search,l0")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        case, method, n = args.one.split(":")
        print(json.dumps(run_one(case, method, int(n), args.device)))
        return
    plan = [("l2-fixed-c", m, args.inputs) for m in ("defdistill", "torchattacks", "art")]
    plan += [("l2-search", m, args.inputs) for m in ("defdistill", "art")]
    plan += [("l0", m, args.l0_inputs) for m in ("defdistill", "art")]
    plan = [p for p in plan if p[0] in args.cases.split(",")]
    rows = []
    for case, method, n in plan:
        proc = subprocess.run([sys.executable, __file__, "--one", f"{case}:{method}:{n}", "--device", args.device],
                              capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
        if proc.returncode != 0:
            rows.append({"case": case, "method": method, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]})
        else:
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(_fmt(rows[-1]), flush=True)
    for r in rows:
        ours = next((o for o in rows if o["case"] == r["case"] and o["method"] == "defdistill" and "error" not in o),
                    None)
        if ours and "error" not in r and r["method"] != "defdistill":
            r["defdistill_speedup"] = ours["attacks_per_second"] / r["attacks_per_second"]
    print(f"\n{'case':<12}{'method':<14}{'attacks':>8}{'seconds':>9}{'att/s':>9}{'success':>9}{'L2':>7}{'L0':>7}"
          f"{'ours x':>8}")
    for r in rows:
        print(_fmt(r))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"cw-{args.device}.json"
    out.write_text(json.dumps({"rows": rows, "torch": torch.__version__, "threads": 2}, indent=2) + "\n")
    print(f"\nwrote {out}")


def _fmt(r: dict) -> str:
    if "error" in r:
        return f"{r['case']:<12}{r['method']:<14} error: {r['error'][:150]}"
    l2 = "-" if r["mean_l2"] is None else f"{r['mean_l2']:.2f}"
    l0 = "-" if r["mean_l0"] is None else f"{r['mean_l0']:.0f}"
    sp = f"{r['defdistill_speedup']:.1f}" if "defdistill_speedup" in r else "-"
    return (f"{r['case']:<12}{r['method']:<14}{r['n_attacks']:>8}{r['seconds']:>9.2f}{r['attacks_per_second']:>9.2f}"
            f"{100 * r['success_rate']:>8.1f}%{l2:>7}{l0:>7}{sp:>8}")


if __name__ == "__main__":
    main()
