"""A sweep started from the dashboard (`w`) is an engine process of its own: a dropped SSH
connection (SIGHUP to the dashboard) does not end it, and it can be attached afterwards."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

import pytest

from conftest import SMALL, dashboard_in_a_terminal, wait_until
from engine.record.events import EventType
from engine.record.rundir import iter_events
from engine.sessions.channel import engine_pid
from tui.__main__ import build_session


def _events(folder) -> int:
    return sum(1 for p in folder.glob("*/events.jsonl") for _ in iter_events(p))


@pytest.mark.slow
def test_sighup_to_a_dashboard_running_a_sweep_leaves_the_sweep_going_and_attachable(tmp_path):
    run_dir = tmp_path / "run"
    sweep_dir = tmp_path / "run-sweep"
    args = [sys.executable, "-m", "tui", "digits", "--run-dir", str(run_dir)]
    for s in [*SMALL, "training.epochs=1"]:
        args += ["--set", s]
    screen = bytearray()
    pid, fd = dashboard_in_a_terminal(args)
    threading.Thread(target=_read_into, args=(fd, screen), daemon=True).start()
    sweep_pid = None
    try:
        wait_until(lambda: b"sweep" in screen and (run_dir / "events.jsonl").exists(), what="the dashboard")
        os.write(fd, b"w")
        # answer the confirmation once it is up (a "y" before that meets no binding and does nothing)
        wait_until(lambda: os.write(fd, b"y") and sweep_dir.exists(), 60, "the sweep launched")
        wait_until(lambda: _events(sweep_dir) > 20, 300, "the sweep's first run training")
        sweep_pid = engine_pid(next(sweep_dir.glob("*/engine.pid")).parent)
        os.kill(pid, signal.SIGHUP)  # the SSH connection drops
        wait_until(lambda: os.waitpid(pid, os.WNOHANG)[0] == pid, 120, "the dashboard's exit")
        after_hangup = _events(sweep_dir)
        wait_until(lambda: _events(sweep_dir) > after_hangup + 20, 120, "the sweep going on without its dashboard")
        session = build_session(argparse.Namespace(open_dir=None, attach=str(sweep_dir), runs="runs"))
        assert session.sweep_dir == sweep_dir and session.detachable
        session.start()
        wait_until(lambda: any(e.type == EventType.RUN_STARTED for e in session.history()), 30, "the attached run")
        session.close()
    finally:
        for victim in (pid, sweep_pid):
            if victim:
                try:
                    os.kill(victim, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _read_into(fd: int, screen: bytearray) -> None:
    try:
        while chunk := os.read(fd, 65536):
            screen.extend(chunk)
    except OSError:
        pass
