"""The engine on a GPU (or, with --small, on a CPU so CI can smoke-test this script): a table and JSON.

1. Training: images/s and s/epoch of the Table I MNIST and CIFAR10 nets at batch 128, with the
   plain step (host waits after every batch, batches gathered on the host), with the data on the
   device and the loss read back 4x a second (item 1), and with the compiled step on top (item 2).
   Inputs: the MNIST test set tiled to 60,000 images when ../shared/data is there, else random
   images of the same shape (speed does not depend on the pixels).
2. JSMA on the logits of a briefly trained MNIST net: attacks/s at 900 and 9,000 attacks.
3. The whole `mnist-t10k` protocol (`--protocol full`: baseline, 9 teachers, 9 students at 50
   epochs, 100 x 9 attacks on every output) as one sweep, one run at a time and `--parallel N`.
4. Peak GPU memory; GPU, driver, torch and cuDNN versions.

    python bench/gpu.py                          # on the GPU: all of it, --protocol full
    python bench/gpu.py --small --device cpu     # tiny sizes on a CPU (what tests/test_bench_gpu.py runs)
    python bench/gpu.py --record-nvml tests/fixtures/nvml-sample.json   # one NVML sample for the panel test
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA_ROOT = ROOT.parent / "shared" / "data"

from engine.attacks.jsma import JSMAConfig, jsma  # noqa: E402
from engine.attacks.outputs import attacked_output  # noqa: E402
from engine.deployment import label as temperature_label  # noqa: E402
from engine.device import attack_batch_size, pair_chunk_elems  # noqa: E402
from engine.networks import build_network  # noqa: E402
from engine.numerics import exact_float32  # noqa: E402
from engine.presets import TrainingConfig  # noqa: E402
from engine.sweeps.result import SweepResult  # noqa: E402
from engine.training import PhaseData, PhaseHooks, make_optimizer, train_phase  # noqa: E402

VARIANTS = {  # name -> TrainingConfig fields
    "plain": {"report_seconds": 0.0, "data_on_device": False, "compile": False},
    "resident+throttled": {"report_seconds": 0.25, "data_on_device": True, "compile": False},
    "resident+throttled+compiled": {"report_seconds": 0.25, "data_on_device": True, "compile": True},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _images(arch: str, n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    shape = (1, 28, 28) if arch == "mnist" else (3, 32, 32)
    if arch == "mnist" and (DATA_ROOT / "MNIST-t10k" / "raw").is_dir():
        from engine.data import load_dataset
        from engine.presets import DataConfig

        d = load_dataset(DataConfig(dataset="mnist-t10k", split=(8000, 2000)), root=DATA_ROOT)
        x = torch.cat([d.x_train, d.x_test])
        y = torch.cat([d.y_train, d.y_test])
        reps = -(-n // len(x))
        return x.repeat(reps, 1, 1, 1)[:n], y.repeat(reps)[:n], "MNIST test set tiled"
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g), "random images"


def _hooks(notes: list[str]) -> PhaseHooks:
    return PhaseHooks(emit_batch=lambda *_a: None, emit_epoch=lambda _m: None, pause_point=lambda: None,
                      take_temperature=lambda: None, save_checkpoint=lambda *_a: None, note=notes.append)


def bench_training(arch: str, n: int, epochs: int, device: torch.device, variants: list[str]) -> list[dict]:
    x, y, source = _images(arch, n)
    rows = []
    for name in variants:
        fields = VARIANTS[name]
        torch.manual_seed(0)
        cfg = TrainingConfig(epochs=epochs, lr=0.01 if arch == "cifar10" else 0.1, **fields)
        model = build_network(arch).to(device)
        opt = make_optimizer(model, cfg)
        notes: list[str] = []
        per_epoch = []
        for epoch in range(epochs):  # epoch 0 warms up (cuDNN plans, compilation, CUDA graph capture)
            one = cfg.model_copy(update={"epochs": epoch + 1})
            _sync(device)
            t0 = time.perf_counter()
            train_phase(model, opt, one, PhaseData(x, y, x[:1000], y[:1000], device, 1.0, seed=0, phase_index=0,
                                                   start_epoch=epoch), _hooks(notes))
            _sync(device)
            per_epoch.append(time.perf_counter() - t0)
        steady = per_epoch[1:] or per_epoch
        s = sum(steady) / len(steady)
        rows.append({"arch": arch, "variant": name, "images": n, "source": source, "seconds_per_epoch": s,
                     "first_epoch_seconds": per_epoch[0], "images_per_second": n / s,
                     "seconds_per_60k_epoch": s * 60_000 / n, "notes": notes})
    return rows


def bench_jsma(counts: list[int], device: torch.device) -> list[dict]:
    x, y, source = _images("mnist", max(counts) // 9 + 1000)
    torch.manual_seed(0)
    cfg = TrainingConfig(epochs=1, report_seconds=0.25)
    model = build_network("mnist").to(device)
    train_phase(model, make_optimizer(model, cfg), cfg,
                PhaseData(x[1000:], y[1000:], x[:1000], y[:1000], device, 1.0, seed=0, phase_index=0), _hooks([]))
    model.eval()
    rows = []
    for count in counts:
        inputs = count // 9
        xs = x[:inputs].repeat_interleave(9, 0)
        targets = (y[:inputs].repeat_interleave(9) + torch.arange(1, 10).repeat(inputs)) % 10
        jcfg = JSMAConfig(batch_size=attack_batch_size(0, device, len(xs)), pair_chunk=pair_chunk_elems(device))
        out = attacked_output(model, "logits", 1.0)
        with exact_float32():
            _sync(device)
            t0 = time.perf_counter()
            res = jsma(out, xs, targets, jcfg)
            _sync(device)
        s = time.perf_counter() - t0
        rows.append({"attacks": len(xs), "output": "logits", "seconds": s, "attacks_per_second": len(xs) / s,
                     "success_rate": float(res.success.float().mean()), "source": source,
                     "batch_size": jcfg.batch_size})
    return rows


def bench_protocol(kind: str, parallel: int, device: str) -> list[dict]:
    if kind == "none":
        return []
    if kind == "full":
        args = ["sweep", "mnist-t10k", "--data-root", str(DATA_ROOT), "--quiet", "--set", f"device='{device}'"]
    else:  # tiny: the same machinery on digits, a few seconds a run
        args = ["sweep", "digits", "--quiet", "--temperatures", "5,50", "--set", "training.epochs=2",
                "--set", "data.train_limit=300", "--set", "data.test_limit=100", "--set", "attack.samples=2",
                "--set", f"device='{device}'"]
    rows = []
    for n in sorted({1, parallel}):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "engine.cli", *args, "--sweep-dir", f"{tmp}/sweep",
                                   "--parallel", str(n)], cwd=ROOT, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-2000:])
            sweep = SweepResult.from_json(json.loads(Path(tmp, "sweep", "sweep.json").read_text()))
        rows.append({"protocol": kind, "parallel": n, "wall_seconds": wall,
                     "baseline_jsma_f": sweep.baseline.success_rate.get("softmax"),
                     f"T{temperature_label(sweep.top)}_jsma_f": sweep.at(sweep.top).success_rate.get("softmax")})
    return rows


def versions(device: torch.device) -> dict:
    out = {"torch": torch.__version__, "cudnn": torch.backends.cudnn.version(), "device": str(device),
           "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
        out["peak_gpu_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        try:
            import pynvml

            pynvml.nvmlInit()
            out["driver"] = pynvml.nvmlSystemGetDriverVersion()
        except Exception as exc:
            out["driver"] = f"N/A ({exc})"
    return out


def record_nvml(path: Path) -> None:
    """One real NVML reading of this process's GPU, for the system panel's test (never invented)."""
    import pynvml

    from engine.device import gpu_uuid

    device = torch.device("cuda")
    torch.ones(1, device=device)  # a CUDA context, so this process is listed with its memory
    uuid = gpu_uuid(device)
    pynvml.nvmlInit()
    h = pynvml.nvmlDeviceGetHandleByUUID(uuid)

    def read(fn):
        try:
            return fn()
        except pynvml.NVMLError as exc:
            return {"error": str(exc)}

    mem = pynvml.nvmlDeviceGetMemoryInfo(h)
    sample = {
        "uuid": uuid, "pid": os.getpid(), "name": read(lambda: pynvml.nvmlDeviceGetName(h)),
        "util": read(lambda: pynvml.nvmlDeviceGetUtilizationRates(h).gpu), "used": mem.used, "total": mem.total,
        "temp": read(lambda: pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)),
        "power": read(lambda: pynvml.nvmlDeviceGetPowerUsage(h)),
        "procs": [{"pid": p.pid, "usedGpuMemory": p.usedGpuMemory}
                  for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h)],
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "torch": torch.__version__,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sample, indent=2, default=str) + "\n")
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--small", action="store_true", help="tiny sizes (a CPU smoke test)")
    ap.add_argument("--protocol", choices=["full", "tiny", "none"], help="default: full on a GPU, tiny with --small")
    ap.add_argument("--parallel", type=int, default=4, help="concurrent runs for the protocol's parallel row")
    ap.add_argument("--out", type=Path, help="JSON path (default bench/results/gpu-<device>.json)")
    ap.add_argument("--no-compile", action="store_true", help="skip the compiled step (its first epoch compiles)")
    ap.add_argument("--record-nvml", type=Path, metavar="PATH")
    args = ap.parse_args()
    if args.record_nvml:
        record_nvml(args.record_nvml)
        return
    device = torch.device(args.device)
    n, epochs, counts = (256, 2, [18]) if args.small else (60_000, 3, [900, 9000])
    protocol = args.protocol or ("tiny" if args.small else "full")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    variants = [v for v in VARIANTS if not (args.no_compile and "compiled" in v)]
    result = {"training": bench_training("mnist", n, epochs, device, variants)
              + bench_training("cifar10", n // 2 if args.small else 50_000, epochs, device, variants),
              "jsma": bench_jsma(counts, device),
              "protocol": bench_protocol(protocol, 2 if args.small else args.parallel, args.device)}
    result["versions"] = versions(device)
    print(f"\n{'net':<8} {'variant':<28} {'s/epoch':>8} {'img/s':>9} {'s per 60k':>10}")
    for r in result["training"]:
        print(f"{r['arch']:<8} {r['variant']:<28} {r['seconds_per_epoch']:8.3f} {r['images_per_second']:9.0f} "
              f"{r['seconds_per_60k_epoch']:10.3f}")
    for r in result["jsma"]:
        print(f"JSMA logits {r['attacks']:>5} attacks: {r['seconds']:.2f} s, {r['attacks_per_second']:.0f} att/s, "
              f"success {100 * r['success_rate']:.1f}%")
    for r in result["protocol"]:
        print(f"protocol {r['protocol']} parallel={r['parallel']}: {r['wall_seconds']:.1f} s")
    print(json.dumps(result["versions"]))
    out = args.out or ROOT / "bench" / "results" / f"gpu-{device.type}{'-small' if args.small else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
