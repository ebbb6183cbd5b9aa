"""JSMA speed and outcome, ours vs ART's SaliencyMapMethod vs torchattacks' JSMA, one run, same attacks.

The same Table I MNIST net (trained here on MNIST-t10k, seeded), the same 180 attacks (20 held-out
inputs x 9 targets), theta = 1, Upsilon = 14.5%, 2 CPU threads. Each method runs in its own
process so its peak RSS is its own. Success and features changed are measured the same way for
every method: the model's prediction on the returned image, and the count of changed values.

    pip install -e '.[peers]'        # ART 1.20.x and torchattacks 3.5.x, for this script only
    python bench/jsma.py [--output logits|softmax|both] [--device cpu|cuda] [--attacks-per-input 9]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
MODEL = RESULTS / "jsma-bench-model.pt"
DATA_ROOT = ROOT.parent / "shared" / "data"


def _data():
    from engine.data import load_dataset
    from engine.presets import DataConfig

    return load_dataset(DataConfig(dataset="mnist-t10k"), root=DATA_ROOT)


def _model(device: str) -> nn.Module:
    from engine.networks import build_network

    net = build_network("mnist")
    net.load_state_dict(torch.load(MODEL, map_location="cpu"))
    return net.to(device).eval()


def train_model() -> None:
    """A baseline (T = 1) Table I net: 4 epochs of Adam on the 8,000 training images (~98%)."""
    from engine.networks import build_network

    torch.manual_seed(0)
    data = _data()
    net = build_network("mnist")
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _epoch in range(4):
        for idx in torch.randperm(len(data.y_train)).split(128):
            loss = nn.functional.cross_entropy(net(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    RESULTS.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), MODEL)


def attack_set(device: str, n_inputs: int, per_input: int):
    data = _data()
    net = _model(device)
    with torch.no_grad():
        ok = net(data.x_test.to(device)).argmax(1).cpu() == data.y_test
    chosen = torch.nonzero(ok).squeeze(1)[:n_inputs]
    y = data.y_test[chosen].repeat_interleave(per_input)
    x = data.x_test[chosen].repeat_interleave(per_input, 0)
    t = (y + torch.arange(1, per_input + 1).repeat(len(chosen))) % 10
    return net, x, t


class WithSoftmax(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.softmax(self.net(x), dim=1)


class _PeakRSS:
    """Samples this process's RSS every 5 ms: the attack's own peak above what was there before."""

    def __init__(self) -> None:
        import threading

        import psutil

        self._proc = psutil.Process()
        self._base = self._proc.memory_info().rss
        self._peak = self._base
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(0.005):
            self._peak = max(self._peak, self._proc.memory_info().rss)

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return (self._peak - self._base) / 2**20


def run_one(method: str, output: str, device: str, n_inputs: int, per_input: int) -> dict:
    torch.set_num_threads(2)
    net, x, t = attack_set(device, n_inputs, per_input)
    for p in net.parameters():
        p.requires_grad_(False)
    model = WithSoftmax(net) if output == "softmax" else net
    sampler = _PeakRSS()
    t0 = time.perf_counter()
    if method == "defdistill":
        from engine.attacks.jsma import JSMAConfig, jsma
        from engine.attacks.outputs import attacked_output

        res = jsma(attacked_output(net, output, 1.0), x, t, JSMAConfig(theta=1.0, upsilon=0.145, batch_size=len(x)))
        x_adv = res.x_adv
        from engine.attacks.jsma import ENDED

        counts = torch.bincount(res.ended, minlength=len(ENDED)).tolist()
        extra = {"ended": dict(zip(ENDED, counts, strict=True))}
    elif method == "art":
        import numpy as np
        from art.attacks.evasion import SaliencyMapMethod
        from art.estimators.classification import PyTorchClassifier

        clf = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10,
                                clip_values=(0.0, 1.0), device_type="gpu" if device == "cuda" else "cpu")
        atk = SaliencyMapMethod(clf, theta=1.0, gamma=0.145, batch_size=len(x), verbose=False)
        onehot = np.eye(10, dtype=np.float32)[t.numpy()]
        x_adv = torch.from_numpy(atk.generate(x.numpy(), y=onehot))
        extra = {}
    elif method == "torchattacks":
        import torchattacks

        atk = torchattacks.JSMA(model, theta=1.0, gamma=0.145)
        atk.set_mode_targeted_by_label(quiet=True)
        x_adv = atk(x.to(device), t.to(device)).cpu()
        extra = {}
    else:
        raise SystemExit(f"unknown method {method}")
    seconds = time.perf_counter() - t0
    attack_mb = sampler.stop()
    with torch.no_grad():
        pred = net(x_adv.to(device)).argmax(1).cpu()
    success = pred == t
    changed = (x_adv != x).flatten(1).sum(1).float()
    return {
        "method": method, "output": output, "device": device, "n_attacks": len(x), "seconds": seconds,
        "attacks_per_second": len(x) / seconds, "success_rate": float(success.float().mean()),
        "mean_features_changed": float(changed[success].mean() / 784) if success.any() else None,
        "max_features_changed": int(changed.max()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "attack_extra_mb": attack_mb,
        **extra,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", choices=["logits", "softmax", "both"], default="both")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--inputs", type=int, default=20)
    ap.add_argument("--attacks-per-input", type=int, default=9)
    ap.add_argument("--methods", default="defdistill,art,torchattacks")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        method, output = args.one.split(":")
        print(json.dumps(run_one(method, output, args.device, args.inputs, args.attacks_per_input)))
        return
    if not (DATA_ROOT / "MNIST-t10k" / "raw").is_dir():
        raise SystemExit(f"bench/jsma.py needs the MNIST t10k files in {DATA_ROOT}/MNIST-t10k/raw")
    if not MODEL.exists():
        train_model()
    outputs = ["logits", "softmax"] if args.output == "both" else [args.output]
    rows = []
    for output in outputs:
        for method in args.methods.split(","):
            proc = subprocess.run([sys.executable, __file__, "--one", f"{method}:{output}", "--device", args.device,
                                   "--inputs", str(args.inputs), "--attacks-per-input", str(args.attacks_per_input)],
                                  capture_output=True, text=True, env={"OMP_NUM_THREADS": "2", **_env()})
            if proc.returncode != 0:
                rows.append({"method": method, "output": output, "error": proc.stderr.strip().splitlines()[-1]})
            else:
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(_fmt(rows[-1]), flush=True)
    for output in outputs:
        ours = next((r for r in rows if r["method"] == "defdistill" and r["output"] == output and "error" not in r),
                    None)
        for r in rows:
            if ours and r["output"] == output and "error" not in r and r["method"] != "defdistill":
                r["defdistill_speedup"] = ours["attacks_per_second"] / r["attacks_per_second"]
    print()
    print(f"{'method':<14}{'output':<9}{'attacks':>8}{'seconds':>9}{'att/s':>9}{'success':>9}{'feat%':>7}"
          f"{'peakMB':>8}{'+MB':>6}{'ours x':>8}")
    for r in rows:
        print(_fmt(r))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"jsma-{args.device}.json"
    out.write_text(json.dumps({"rows": rows, "torch": torch.__version__, "threads": 2}, indent=2) + "\n")
    print(f"\nwrote {out}")


def _env() -> dict:
    import os

    return dict(os.environ)


def _fmt(r: dict) -> str:
    if "error" in r:
        return f"{r['method']:<14}{r['output']:<9} error: {r['error']}"
    feat = f"{100 * r['mean_features_changed']:.2f}" if r["mean_features_changed"] is not None else "-"
    sp = f"{r['defdistill_speedup']:.1f}" if "defdistill_speedup" in r else "-"
    return (f"{r['method']:<14}{r['output']:<9}{r['n_attacks']:>8}{r['seconds']:>9.2f}{r['attacks_per_second']:>9.1f}"
            f"{100 * r['success_rate']:>8.1f}%{feat:>7}{r['peak_rss_mb']:>8.0f}{r['attack_extra_mb']:>6.0f}{sp:>8}")


if __name__ == "__main__":
    main()
