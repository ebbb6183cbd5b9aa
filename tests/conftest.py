"""Shared fixtures: a small trained digits run reused by several tests, and CLI helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

# Small but real (~20 s on 2 cores): 8 epochs on 800 digits images; T = 20 so the student
# converges in that time (baseline ~0.96, student ~0.8 held-out accuracy).
QUICK = [
    "training.epochs=8", "data.train_limit=800", "data.test_limit=200", "training.optimizer='adam'",
    "training.lr=0.002", "training.lr_decay=1.0", "distillation.temperature=20", "attack.enabled=false",
    "device='cpu'",  # pinned: tests compare with CPU tensors they build (tests/test_gpu.py covers CUDA)
]


def wait_until(predicate: Callable[[], object], timeout: float = 120.0, what: str = "condition") -> None:
    """Poll `predicate` until it is true; fail naming `what` after `timeout` seconds. Tests wait for
    a condition, never for a fixed time: a slow CI machine then only takes longer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout:.0f} s")


async def pilot_wait_until(pilot, predicate: Callable[[], object], timeout: float = 30.0,
                           what: str = "condition") -> None:
    """`wait_until` for Textual pilot tests: lets the app run between polls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"{what} not reached within {timeout:.0f} s")


async def press_into_modal(pilot, key: str, modal: type, *typed: str, focus: str | None = None) -> None:
    """Press `key`, wait until `modal` is the top screen (and `focus`, a selector, has the focus), then
    type. Keys sent before the modal mounts go to the screen below: under load on a 2-core machine the
    modal can take longer than one idle tick to appear."""
    app = pilot.app
    await pilot.press(key)
    await pilot_wait_until(pilot, lambda: isinstance(app.screen, modal) and (
        focus is None or app.focused is not None and app.focused in app.screen.query(focus)), what=f"{modal.__name__}")
    if typed:
        await pilot.press(*typed)


def cli(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One finished quick digits run (baseline, teacher and student at T=20), no attacks yet."""
    from engine.presets import load_preset
    from engine.runs.session import ThreadSession

    preset = load_preset("digits", QUICK)
    session = ThreadSession.create(preset, tmp_path_factory.mktemp("runs") / "trained")
    session.start()
    assert session.wait(600)
    assert session.state == "finished", session.error
    return session


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "FashionMNIST" / "raw").is_dir():
        pytest.skip("../shared/data is absent on this machine")
    return SHARED_DATA
