"""Wall time of `defdistill-engine run digits` (the embedded default), training alone and with attacks.

Runs the real command line twice in fresh processes on this machine's CPU and reads the run
directories' own numbers.

    python bench/digits_run.py [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str], run_dir: Path) -> tuple[float, dict]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "run", "digits", "--quiet", "--run-dir", str(run_dir),
                           *args], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return wall, json.loads((run_dir / "summary.json").read_text())


def torch_version() -> str:
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                         text=True)
    return out.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, extra in (("training only", ["--set", "attack.enabled=false"]), ("training + attacks", [])):
            wall, s = run(["--set", f"device='{args.device}'", *extra], Path(tmp) / label.replace(" ", ""))
            times = [(e["type"], e["time"]) for e in map(json.loads, (Path(tmp) / label.replace(" ", "") /
                                                                    "events.jsonl").read_text().splitlines())]
            trained = max(t for kind, t in times if kind == "phase_finished") - times[0][1]
            row = {"case": label, "wall_seconds": wall, "torch": torch_version(),
                   "training_seconds": trained, "after_training_seconds": times[-1][1] - times[0][1] - trained,
                   "accuracy": s["accuracy"],
                   "logit_ratio": s["mean_abs_logit"]["student"] / s["mean_abs_logit"]["baseline"],
                   "saturated_share": s["saturated_share"],
                   "attacks": {k: v["success_rate"] for k, v in s.get("attacks", {}).items()},
                   "verdict": {m: {"verdict": v["verdict"], "fired": [c["name"] for c in v["checks"] if c["fired"]],
                                   "transfer": v["evidence"].get("transfer", {})}
                               for m, v in s.get("verdict", {}).items()}}
            rows.append(row)
            print(f"{label:<20} {wall:7.1f} s (training {trained:.0f} s, attacks and checks "
                  f"{row['after_training_seconds']:.0f} s)", flush=True)
            print(f"{'':<20} acc b/t/s {s['accuracy']['baseline']:.3f}/"
                  f"{s['accuracy']['teacher']:.3f}/{s['accuracy']['student']:.3f}  logit ratio {row['logit_ratio']:.1f}"
                  f"  saturated {s['saturated_share']:.2f}", flush=True)
            for k, v in row["attacks"].items():
                print(f"{'':<20} {k:<24} {100 * v:5.1f}%")
            for m, v in row["verdict"].items():
                print(f"{'':<20} verdict {m}: {v['verdict']} ({', '.join(v['fired']) or 'no check fired'})")
                for k, rate in v["transfer"].items():
                    print(f"{'':<24} transfer {k}: {100 * rate:.0f}%")
    out = ROOT / "bench" / "results" / f"digits-run-{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
