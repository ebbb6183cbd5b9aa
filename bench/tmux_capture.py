"""The real dashboard in tmux at 120x40 and 80x24: send keys, capture the screen, check every panel.

    python bench/tmux_capture.py            # writes bench/results/tmux-<W>x<H>.txt and tmux-capture.json
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from processes import stop_engine

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PANELS = ("loss / accuracy", "softmax confidence", "GPU", "JSMA attacks", "events")
FOOTER = ("pause", "temp", "jsma", "quit")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def _sessions() -> str:
    # tmux exits with an error once its last session is gone: that is an empty list, not a failure
    return subprocess.run(["tmux", "list-sessions", "-F", "#{session_name}"], capture_output=True, text=True).stdout


def capture(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def wait_for(session: str, text: str, seconds: float = 120) -> str:
    deadline = time.time() + seconds
    while time.time() < deadline:
        screen = capture(session)
        if text in screen:
            return screen
        time.sleep(0.2)
    raise SystemExit(f"{text!r} never appeared:\n{capture(session)}")


def run_size(width: int, height: int, tmp: Path) -> dict:
    session = f"defdistill-{width}x{height}"
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    cmd = (f"cd {ROOT} && {sys.executable} -m tui digits --run-dir {tmp / session} "
           "--set training.epochs=40 --set attack.enabled=false")
    tmux("new-session", "-d", "-s", session, "-x", str(width), "-y", str(height), cmd)
    try:
        wait_for(session, "epoch 2/")
        for key in ("n", "n", "d"):
            tmux("send-keys", "-t", session, key)
            time.sleep(0.3)
        screen = wait_for(session, "deployed")
        missing = [p for p in PANELS + FOOTER if p not in screen]
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"tmux-{width}x{height}.txt").write_text(screen)
        print(f"--- {width}x{height}: missing {missing or 'nothing'}")
        print(screen)
        tmux("send-keys", "-t", session, "q")
        time.sleep(0.5)
        tmux("send-keys", "-t", session, "y")
        deadline = time.time() + 60
        while time.time() < deadline and session in _sessions():
            time.sleep(0.5)
        stopped = any('"stopped"' in line for line in (tmp / session / "events.jsonl").read_text().splitlines())
        return {"size": f"{width}x{height}", "missing": missing, "stopped_cleanly": stopped}
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        stop_engine(tmp / session)  # after a failure above, the engine would go on training


def main() -> None:
    if not shutil.which("tmux"):
        raise SystemExit("tmux is not installed (apt-get install tmux)")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_size(120, 40, Path(tmp)), run_size(80, 24, Path(tmp))]
    (RESULTS / "tmux-capture.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(json.dumps(rows, indent=2))
    if any(r["missing"] or not r["stopped_cleanly"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
