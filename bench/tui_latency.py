"""Key-press latency of the real dashboard in tmux while training runs on 2 CPU cores.

Sends `n` (next probe) and polls the terminal until the probe counter moves: the time from the
key reaching tmux to the new screen, polling cost included (so an upper bound).

    python bench/tui_latency.py [--presses 60]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ENV = os.environ.get("LATENCY_ENV", "")  # e.g. "OMP_WAIT_POLICY=PASSIVE " to compare
PROBE = re.compile(r"probe (\d+)/(\d+)")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def probe_index(session: str) -> int | None:
    m = PROBE.search(tmux("capture-pane", "-p", "-t", session))
    return int(m.group(1)) if m else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presses", type=int, default=60)
    ap.add_argument("--paused", action="store_true", help="pause training first: the idle reference")
    args = ap.parse_args()
    session = "defdistill-latency"
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40",
             f"cd {ROOT} && {ENV}{sys.executable} -m tui digits --run-dir {tmp}/run --set attack.enabled=false")
        try:
            deadline = time.time() + 120
            while time.time() < deadline and "epoch 2/" not in tmux("capture-pane", "-p", "-t", session):
                time.sleep(0.2)
            if args.paused:
                tmux("send-keys", "-t", session, "p")
                time.sleep(2)
            latencies = []
            for _ in range(args.presses):
                before = probe_index(session)
                t0 = time.perf_counter()
                tmux("send-keys", "-t", session, "n")
                while probe_index(session) == before:
                    if time.perf_counter() - t0 > 5:
                        raise SystemExit("no screen change within 5 s")
                latencies.append(1000 * (time.perf_counter() - t0))
                time.sleep(0.15)
            m = re.search(r"phase (\w+)", tmux("capture-pane", "-p", "-t", session))
            training = m.group(0) if m else "?"
        finally:
            subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    row = {"paused": args.paused, "presses": len(latencies), "median_ms": statistics.median(latencies), "p95_ms": p95,
           "max_ms": latencies[-1], "while": training}
    when = "(paused)" if args.paused else "while training"
    print(f"key -> screen latency over {len(latencies)} presses {when}: median {row['median_ms']:.0f} ms, "
          f"p95 {p95:.0f} ms, max {row['max_ms']:.0f} ms")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"tui-latency{'-paused' if args.paused else ''}.json").write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
