"""Start-up of the dashboard on a finished run: time to its first drawn frame and its memory, for the
code before the torch-free client (a git worktree at --before) and this tree, side by side in one run.

    python bench/tui_startup.py [--run RUN_DIR] [--before REV] [--repeats 5]

Each start is the real command, `python -m tui --open RUN_DIR`, in a tmux pane of 120x40: the clock
runs from the process's start until the pane shows the status line and the events panel (the first
frame), then the process's peak RSS (VmHWM) is read and, 3 s later, its RSS at rest. Without --run
a small digits run is trained here first (about a minute). Writes bench/results/tui-startup.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BEFORE = "ae64f87"  # the last commit whose dashboard imported torch (engine/sessions/session.py -> engine.data)
FIRST_FRAME = ("finished", "events")  # the status line's state and the events panel's title


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def small_run(tmp: Path) -> Path:
    run = tmp / "run"
    sets = ["training.epochs=4", "data.train_limit=800", "data.test_limit=200", "training.optimizer='adam'",
            "training.lr=0.002", "training.lr_decay=1.0", "distillation.temperature=20", "attack.samples=3",
            "attack.methods=['jsma']", "attack.outputs=['softmax']", "attack.checks=[]", "device='cpu'"]
    subprocess.run([sys.executable, "-m", "engine.cli", "run", "digits", "--run-dir", str(run), "--quiet",
                    *[a for s in sets for a in ("--set", s)]], cwd=ROOT, check=True, capture_output=True)
    return run


def start_once(tree: Path, run: Path, session: str) -> dict[str, float]:
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    t0 = time.perf_counter()
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40",
         f"cd {tree} && exec env -u COLUMNS -u LINES {sys.executable} -m tui --open {run}")
    try:
        pid = int(tmux("list-panes", "-t", session, "-F", "#{pane_pid}").split()[0])
        deadline = t0 + 60
        while True:
            screen = tmux("capture-pane", "-p", "-t", session)
            if all(text in screen for text in FIRST_FRAME):
                first_frame = time.perf_counter() - t0
                break
            if time.perf_counter() > deadline:
                raise SystemExit(f"no first frame within 60 s from {tree}:\n{screen}")
            time.sleep(0.01)
        status = Path(f"/proc/{pid}/status").read_text()
        peak = int(next(ln for ln in status.splitlines() if ln.startswith("VmHWM")).split()[1]) / 1024
        time.sleep(3)
        rest = psutil.Process(pid).memory_info().rss / 2**20
        torch = any("torch" in m.path for m in psutil.Process(pid).memory_maps())
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    return {"first_frame_s": first_frame, "peak_rss_mb": peak, "rss_at_rest_mb": rest, "torch_loaded": torch}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, help="a finished run directory (default: a small digits run made here)")
    ap.add_argument("--before", default=BEFORE, help=f"the commit compared against (default {BEFORE})")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        run = (args.run or small_run(tmp)).resolve()
        before = tmp / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            trees = {f"before ({args.before})": before, f"after ({rev.strip()} + working tree)": ROOT}
            rows = {}
            for label, tree in trees.items():
                starts = [start_once(tree, run, "defdistill-startup") for _ in range(args.repeats)]
                rows[label] = {"starts": starts, **{k: statistics.median(s[k] for s in starts)
                                                     for k in ("first_frame_s", "peak_rss_mb", "rss_at_rest_mb")},
                               "torch_loaded": any(s["torch_loaded"] for s in starts)}
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, capture_output=True)
    names = list(rows)
    b, a = rows[names[0]], rows[names[1]]
    print(f"{'':<36} {'first frame':>12} {'peak RSS':>10} {'RSS at rest':>12} {'torch':>6}   (median of "
          f"{args.repeats}, 120x40 tmux)")
    for label, r in rows.items():
        print(f"{label:<36} {r['first_frame_s']:>10.2f} s {r['peak_rss_mb']:>7.0f} MB {r['rss_at_rest_mb']:>9.0f} MB "
              f"{'yes' if r['torch_loaded'] else 'no':>6}")
    print(f"{'after / before':<36} {a['first_frame_s'] / b['first_frame_s']:>11.2f}x "
          f"{a['peak_rss_mb'] / b['peak_rss_mb']:>8.2f}x {a['rss_at_rest_mb'] / b['rss_at_rest_mb']:>10.2f}x")
    out = {"command": " ".join(["python", "bench/tui_startup.py", *sys.argv[1:]]), "python": platform.python_version(),
           "cpus": psutil.cpu_count(), "goal": {"first_frame_s": 1.0, "peak_rss_mb": 150}, "results": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tui-startup.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'tui-startup.json'}")


if __name__ == "__main__":
    main()
