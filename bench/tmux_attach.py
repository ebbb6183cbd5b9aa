"""Survive the SSH connection, for real: start defdistill-tui in tmux, kill that tmux session
mid-training (the dashboard gets SIGHUP), attach a new dashboard in a new tmux session, capture it.

    python bench/tmux_attach.py       # prints both captures; writes bench/results/tmux-attach.txt
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True).stdout


def epochs(run_dir: Path) -> int:
    from engine.record.events import EventType
    from engine.record.rundir import iter_events

    return sum(1 for e in iter_events(run_dir / "events.jsonl") if e.type == EventType.EPOCH)


def main() -> None:
    from engine.sessions.channel import engine_alive
    from engine.sessions.listing import run_state, stop_run

    run_dir = Path(tempfile.mkdtemp(prefix="defdistill-attach-")) / "run"
    start = (f"cd {ROOT} && {sys.executable} -m tui digits --run-dir {run_dir} --set training.epochs=40 "
             "--set attack.enabled=false")
    tmux("new-session", "-d", "-s", "dd-first", "-x", "120", "-y", "40", start)
    deadline = time.time() + 180
    while epochs(run_dir) < 4 and time.time() < deadline:
        time.sleep(0.5)
    before = tmux("capture-pane", "-p", "-t", "dd-first")
    tmux("kill-session", "-t", "dd-first")  # the connection drops: the dashboard gets SIGHUP
    n = epochs(run_dir)
    time.sleep(5)
    alive, grew = engine_alive(run_dir), epochs(run_dir) > n
    tmux("new-session", "-d", "-s", "dd-second", "-x", "120", "-y", "40",
         f"cd {ROOT} && {sys.executable} -m tui --attach {run_dir}")
    time.sleep(6)
    after = tmux("capture-pane", "-p", "-t", "dd-second")
    state = run_state(run_dir)
    tmux("kill-session", "-t", "dd-second")
    stop_run(run_dir)
    report = {"engine_alive_after_kill": alive, "epochs_at_kill": n, "epochs_grew_after_kill": grew,
              "state_when_attached": state.state, "progress_when_attached": state.progress}
    text = f"--- before the tmux session was killed\n{before}\n--- attached in a new tmux session\n{after}\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tmux-attach.txt").write_text(text)
    (RESULTS / "tmux-attach.json").write_text(json.dumps(report, indent=2) + "\n")
    print(text)
    print(json.dumps(report, indent=2))
    if not (alive and grew and state.state in ("running", "paused")):
        sys.exit(1)


if __name__ == "__main__":
    main()
