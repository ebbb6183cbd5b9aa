"""Stop what a bench started: the dashboard's engine is a process of its own (it outlives a closed
terminal by design), so killing the tmux session that drew the dashboard leaves it training, in a
temporary directory the bench is about to delete."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.record.lock import process_alive  # noqa: E402
from engine.sessions.channel import engine_pid  # noqa: E402


def stop_engine(run_dir: str | Path, grace: float = 30.0) -> bool:
    """Stop the engine serving `run_dir` (SIGTERM: it checkpoints and exits; SIGKILL after `grace`
    seconds). True when one was running."""
    pid = engine_pid(Path(run_dir))
    if pid is None or pid <= 0 or pid == os.getpid() or not process_alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + grace
    while process_alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    if process_alive(pid):
        os.kill(pid, signal.SIGKILL)
    return True
