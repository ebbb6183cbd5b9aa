"""One engine per run directory: a second engine on a live run is refused and the first goes on."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time

from conftest import LONG, ROOT, SMALL, assert_one_line_error, cli, wait_until
from engine.errors import RunDirError
from engine.record.events import EventType
from engine.record.lock import RunLock
from engine.record.rundir import iter_events


def _batches(run_dir) -> int:
    return sum(1 for e in iter_events(run_dir / "events.jsonl") if e.type == EventType.BATCH)


def test_a_second_engine_on_a_live_run_is_refused_and_the_first_keeps_training(tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "engine.cli", "run", "digits", "--run-dir", str(run_dir), "--quiet"]
    for s in LONG:
        args += ["--set", s]
    first = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _batches(run_dir) >= 3, what="the first engine's first batches")
        for second in (cli("resume", str(run_dir)),
                       cli("run", "digits", "--run-dir", str(run_dir), *sum((["--set", s] for s in SMALL), []))):
            assert_one_line_error(second, "in use by another engine", f"pid {first.pid}", "defdistill-engine stop")
        refused_at = _batches(run_dir)
        wait_until(lambda: _batches(run_dir) > refused_at + 5, what="the first engine training on")
        starts = [e.type for e in iter_events(run_dir / "events.jsonl")
                  if e.type in (EventType.RUN_STARTED, EventType.RUN_RESUMED)]
        assert starts == [EventType.RUN_STARTED], "the refused engine wrote into the run"
        assert first.poll() is None
        assert cli("stop", str(run_dir)).returncode == 0
        assert first.wait(60) == 130  # stopped cleanly, resumable
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    # the lock went with its engine: the run can be taken up again
    resumed = subprocess.Popen([sys.executable, "-m", "engine.cli", "resume", str(run_dir), "--quiet"], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: any(e.type == EventType.RUN_RESUMED for e in iter_events(run_dir / "events.jsonl")),
                   what="the resumed engine")
    finally:
        resumed.kill()
        resumed.wait()


def _hold(folder, holder_pid: int) -> int:
    """Take the run lock the way an engine does, with `holder_pid` written as its holder."""
    fd = os.open(folder / "engine.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, f"pid {holder_pid} since 00:00:00: cli.py run digits\n".encode())
    return fd


def test_a_lock_still_held_by_a_dead_engine_is_waited_for_and_a_live_one_refuses(tmp_path):
    """A killed engine's main thread is a zombie before its last thread has closed the lock: resume waits
    for the kernel to drop it. A lock whose holder lives is refused at once."""
    dead = subprocess.Popen(["true"])
    dead.wait()  # reaped: its pid names no process now
    fd = _hold(tmp_path, dead.pid)
    threading.Timer(0.5, os.close, args=(fd,)).start()
    t0 = time.monotonic()
    with RunLock.acquire(tmp_path) as lock:
        assert lock.held and time.monotonic() - t0 >= 0.4
    fd = _hold(tmp_path, os.getpid())
    try:
        t0 = time.monotonic()
        try:
            RunLock.acquire(tmp_path)
            raise AssertionError("a lock held by a live engine was taken")
        except RunDirError as exc:
            assert f"pid {os.getpid()}" in str(exc) and time.monotonic() - t0 < 0.5
    finally:
        os.close(fd)
