"""Memory of the dashboard process (engine thread included) over a long digits training run.

    python bench/tui_memory.py [--minutes 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from processes import stop_engine

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=20)
    args = ap.parse_args()
    session = "defdistill-memory"
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40",
                        f"cd {ROOT} && exec {sys.executable} -m tui digits --run-dir {tmp}/run "
                        "--set training.epochs=100000 --set attack.enabled=false"], check=True)
        try:
            pid = int(subprocess.run(["tmux", "list-panes", "-t", session, "-F", "#{pane_pid}"],
                                     capture_output=True, text=True).stdout.split()[0])
            proc = psutil.Process(pid)
            t0 = time.time()
            while time.time() - t0 < args.minutes * 60:
                samples.append((time.time() - t0, proc.memory_info().rss / 2**20))
                time.sleep(15)
            events = sum(1 for _ in open(Path(tmp) / "run" / "events.jsonl"))
        finally:
            subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
            stop_engine(Path(tmp) / "run")
    # growth after warm-up (first 2 minutes: imports, first epochs, plot buffers filling)
    warm = [m for t, m in samples if t >= 120] or [m for _, m in samples]
    row = {"minutes": args.minutes, "rss_start_mb": samples[0][1], "rss_after_warmup_mb": warm[0],
           "rss_end_mb": samples[-1][1], "rss_max_mb": max(m for _, m in samples),
           "growth_after_warmup_mb": samples[-1][1] - warm[0], "events": events, "samples": samples}
    print(f"RSS {row['rss_start_mb']:.0f} MB at start, {warm[0]:.0f} MB after 2 min, {row['rss_end_mb']:.0f} MB "
          f"after {args.minutes:g} min ({events:,} events): growth {row['growth_after_warmup_mb']:+.0f} MB")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tui-memory.json").write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
