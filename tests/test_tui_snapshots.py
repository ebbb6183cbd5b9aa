"""Screenshots of the dashboard on scripted, deterministic event streams (pytest-textual-snapshot).

Regenerate after an intended change with: pytest tests/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

import os
import time

import pytest

from conftest import pilot_wait_until
from engine.sessions.replay import ReplaySession
from scripted import NO_GPU, write_run
from tui.app import DefdistillApp


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.delenv("TZ")
    time.tzset()


def _app(tmp_path, stage: str) -> DefdistillApp:
    # The files live in this test's own folder; the events name a fixed one, which is what the
    # status line shows, so every machine draws the same screen.
    run = write_run(tmp_path / stage, stage, shown_dir=f"/tmp/defdistill-snapshots/{stage}")
    app = DefdistillApp(ReplaySession(run, follow=False), telemetry=lambda: NO_GPU)
    app.watching = False  # draw as the live dashboard would
    return app


def _settled(app: DefdistillApp, *keys: str):
    """Wait until every scripted event is on screen, then press `keys` (a modal's Input stops
    blinking first, so the screenshot is the same every time)."""

    async def run_before(pilot) -> None:
        n = sum(1 for _ in open(os.path.join(app.session.run_dir, "events.jsonl")))
        await pilot_wait_until(pilot, lambda: app.state.last_seq >= n, what="every scripted event folded in")
        app._redraw(force=True)
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
            for field in app.screen.query("Input"):
                field.cursor_blink = False
    return run_before


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
def test_main_screen_mid_training(snap_compare, tmp_path, size):
    app = _app(tmp_path, "training")
    assert snap_compare(app, terminal_size=size, run_before=_settled(app))


def test_main_screen_paused(snap_compare, tmp_path):
    app = _app(tmp_path, "paused")
    assert snap_compare(app, terminal_size=(120, 40), run_before=_settled(app))


def test_main_screen_during_attacks(snap_compare, tmp_path):
    app = _app(tmp_path, "attacking")
    assert snap_compare(app, terminal_size=(120, 40), run_before=_settled(app))


@pytest.mark.parametrize("size", [(120, 40), (160, 50)])
def test_results_screen_after_run(snap_compare, tmp_path, size):
    """The source x target matrix keeps every "100" whole (rich cut them to "1…" before) at both widths."""
    app = _app(tmp_path, "finished")
    settle = _settled(app, "r")

    async def run_before(pilot) -> None:
        await settle(pilot)
        matrix = app.screen.query_one("#results-matrix")
        lines = [strip.text for strip in matrix.render_lines(matrix.content_region.reset_offset)]
        cells = [line.split()[1:] for line in lines if line.strip()[:1].isdigit()]
        assert len(cells) == 10 and all(len(row) == 10 for row in cells), lines
        assert "100" in {c for row in cells for c in row} and not any("…" in line for line in lines), lines
        table = app.screen.query_one("#results-table")
        text = " ".join(s.text for s in table.render_lines(table.content_region.reset_offset))
        # where each model's input gradient lives, under the attack numbers it explains
        assert "baseline 60.0% of pixels (dead units 5%)" in text and "student 3.8% of pixels" in text, text

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_temperature_modal_rejects_invalid_value(snap_compare, tmp_path):
    app = _app(tmp_path, "training")
    assert snap_compare(app, terminal_size=(120, 40), run_before=_settled(app, "t", "-", "5", "enter"))


def test_help_screen(snap_compare, tmp_path):
    app = _app(tmp_path, "training")
    assert snap_compare(app, terminal_size=(120, 40), run_before=_settled(app, "question_mark"))


def test_no_gpu_panel_says_so_in_one_line(snap_compare, tmp_path):
    app = _app(tmp_path, "finished")
    assert snap_compare(app, terminal_size=(120, 40), run_before=_settled(app))
