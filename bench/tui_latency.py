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

from processes import stop_engine

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ENV = os.environ.get("LATENCY_ENV", "")  # e.g. "OMP_WAIT_POLICY=PASSIVE " to compare
PROBE = re.compile(r"probe (\d+)/(\d+)")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def probe_index(session: str) -> int | None:
    m = PROBE.search(tmux("capture-pane", "-p", "-t", session))
    return int(m.group(1)) if m else None


def measure(tree: Path, presses: int, paused: bool) -> tuple[list[float], str]:
    """Latencies (ms) of `presses` key presses on the dashboard of `tree` (a checkout) training digits."""
    session = "defdistill-latency"
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40",
             f"cd {tree} && {ENV}{sys.executable} -m tui digits --run-dir {tmp}/run --set attack.enabled=false")
        try:
            deadline = time.time() + 120
            while time.time() < deadline and "epoch 2/" not in tmux("capture-pane", "-p", "-t", session):
                time.sleep(0.2)
            if paused:
                tmux("send-keys", "-t", session, "p")
                time.sleep(2)
            latencies = []
            for _ in range(presses):
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
            stop_engine(Path(tmp) / "run")
    return latencies, training



def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"presses": len(ordered), "median_ms": statistics.median(ordered),
            "p95_ms": ordered[int(0.95 * (len(ordered) - 1))], "max_ms": ordered[-1]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presses", type=int, default=60)
    ap.add_argument("--paused", action="store_true", help="pause training first: the idle reference")
    ap.add_argument("--before", metavar="REV", help="also measure the dashboard of this commit (a git worktree), "
                    "in alternating rounds with this tree's, so both see the same machine")
    ap.add_argument("--rounds", type=int, default=3, help="with --before: rounds of presses/rounds presses each")
    args = ap.parse_args()
    when = "(paused)" if args.paused else "while training"
    if not args.before:
        latencies, training = measure(ROOT, args.presses, args.paused)
        row = {"paused": args.paused, **summary(latencies), "while": training}
        print(f"key -> screen latency over {len(latencies)} presses {when}: median {row['median_ms']:.0f} ms, "
              f"p95 {row['p95_ms']:.0f} ms, max {row['max_ms']:.0f} ms")
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"tui-latency{'-paused' if args.paused else ''}.json").write_text(json.dumps(row, indent=2) + "\n")
        return
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            trees = {f"before ({args.before})": before, "after (this tree)": ROOT}
            found: dict[str, list[float]] = {k: [] for k in trees}
            for _ in range(args.rounds):
                for label, tree in trees.items():
                    found[label] += measure(tree, max(1, args.presses // args.rounds), args.paused)[0]
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, capture_output=True)
    rows = {k: summary(v) for k, v in found.items()}
    print(f"key -> screen latency {when}, {args.rounds} alternating rounds")
    for label, r in rows.items():
        print(f"  {label:<24} median {r['median_ms']:4.0f} ms  p95 {r['p95_ms']:4.0f} ms  max {r['max_ms']:4.0f} ms "
              f"({r['presses']} presses)")
    b, a = rows[f"before ({args.before})"], rows["after (this tree)"]
    print(f"  after / before: median {a['median_ms'] / b['median_ms']:.2f}x, p95 {a['p95_ms'] / b['p95_ms']:.2f}x")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tui-latency-before-after.json").write_text(json.dumps(
        {"paused": args.paused, "rounds": args.rounds, "results": rows,
         "latencies_ms": found}, indent=2) + "\n")


if __name__ == "__main__":
    main()
