"""Each key against a real engine session on a tiny preset (App.run_test)."""

from __future__ import annotations

import asyncio
import html
import json
import re

import pytest

from conftest import SMALL, assert_one_line_error, cli, pilot_wait_until, press_into_modal
from engine.presets import load_preset
from engine.record.events import EventType
from engine.record.rundir import iter_events
from engine.sessions.thread_session import ThreadSession
from scripted import NO_GPU
from tui.app import DefdistillApp
from tui.screens.attack import AttackModal
from tui.screens.confirm import ConfirmModal
from tui.screens.quit import QuitModal
from tui.screens.temperature import TemperatureModal


def _app(tmp_path, *extra: str) -> DefdistillApp:
    session = ThreadSession.create(load_preset("digits", [*SMALL, *extra]), tmp_path / "run")
    return DefdistillApp(session, telemetry=lambda: NO_GPU)


def _screen_text(app) -> str:
    """What the terminal shows, as plain text (from Textual's own SVG export)."""
    svg = app.export_screenshot()
    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


def _batches(app) -> int:
    return sum(1 for e in app.session.history() if e.type == EventType.BATCH)


def test_p_pauses_batch_events_until_pressed_again(tmp_path):
    async def run():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot_wait_until(pilot, lambda: _batches(app) > 2)
            await pilot.press("p")
            await pilot_wait_until(pilot, lambda: app.state.status == "paused")
            await pilot.press("p")
            await pilot_wait_until(pilot, lambda: app.state.status == "running"
                                   and any(e.type == EventType.RESUMED for e in app.session.history()))
            await pilot_wait_until(pilot, lambda: _batches(app) > 3, timeout=30)
            app.session.stop()
            app.session.wait(60)
        # the engine's own record: no batch ran between its PAUSED and RESUMED events
        kinds = [e.type for e in app.session.history()]
        paused, resumed = kinds.index(EventType.PAUSED), kinds.index(EventType.RESUMED)
        assert resumed > paused and EventType.BATCH not in kinds[paused:resumed]

    asyncio.run(run())


def test_t_with_20_changes_the_engine_temperature(tmp_path):
    async def run():
        app = _app(tmp_path, "distillation.temperature=5")
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot_wait_until(pilot, lambda: app.state.phase == "teacher")
            # paused first: the quick run is ~10 s, and a change typed after its end has nothing to apply to
            await pilot.press("p")
            await pilot_wait_until(pilot, lambda: app.state.status == "paused")
            await press_into_modal(pilot, "t", TemperatureModal, "2", "0", "enter", focus="#temperature-input")
            await pilot_wait_until(pilot, lambda: not isinstance(app.screen, TemperatureModal), what="the modal closed")
            await pilot.press("p")
            await pilot_wait_until(pilot, lambda: app.state.distill_temperature == 20.0, timeout=180)
            await pilot_wait_until(pilot, lambda: any(e.type == EventType.BATCH and e.data.temperature == 20.0
                                            for e in app.session.history()), 60)
            app.session.stop()
            app.session.wait(60)
        logged = [e for e in iter_events(app.session.run_dir / "events.jsonl")
                  if e.type == EventType.TEMPERATURE_CHANGED]
        assert logged and logged[-1].data.temperature == 20.0 and logged[-1].data.old == 5.0

    asyncio.run(run())


def test_j_runs_attacks_and_the_counter_ends_on_the_engines_numbers(tmp_path):
    async def run():
        app = _app(tmp_path, "training.epochs=3")
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot_wait_until(pilot, lambda: app.state.status == "finished")
            await press_into_modal(pilot, "j", AttackModal)
            samples = app.screen.query_one("#attack-samples")
            samples.value = "1"
            app.screen.query_one("#method-cw_l2").value = False  # JSMA's counters here; C&W's: tests/test_cw.py
            await pilot.click("#attack-launch")
            await pilot_wait_until(pilot, lambda: len(app.state.attack_results) == 6
                                   and app.session.state == "finished")
            app._redraw(force=True)
            await pilot.pause()
            shown = _screen_text(app)
            for key in app.state.attack_results:
                on_disk = json.loads((app.session.run_dir / "attacks" / f"{key}.json").read_text())
                counter = app.state.attacks[key]
                assert (counter.succeeded, counter.attempted) == (on_disk["n_succeeded"], on_disk["n_attacks"])
                assert on_disk["n_attacks"] == 9  # one input, nine targets
                assert f"{key} {counter.succeeded}/{counter.attempted}" in " ".join(shown.split())

    asyncio.run(run())


def test_q_asks_then_leaves_a_resumable_run(tmp_path):
    async def run():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot_wait_until(pilot, lambda: app.state.phase == "teacher")
            await press_into_modal(pilot, "q", QuitModal, "y")
            await pilot_wait_until(pilot, lambda: app.session.state == "stopped", timeout=60)
            await pilot.pause(0.5)
        return app.session.run_dir

    run_dir = asyncio.run(run())
    assert not (run_dir / "summary.json").exists()
    proc = cli("resume", str(run_dir), "--quiet")
    assert proc.returncode == 0, proc.stderr
    accuracy = json.loads((run_dir / "summary.json").read_text())["accuracy"]
    assert set(accuracy) == {"baseline", "teacher", "student"} and accuracy["baseline"] > 0.5, accuracy


def test_s_saves_a_screenshot_into_the_run_directory(tmp_path):
    async def run():
        app = _app(tmp_path, "training.epochs=1")
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot_wait_until(pilot, lambda: app.state.status == "finished")
            await pilot.press("s")
            await pilot.pause()
        return app.session.run_dir

    shots = list(asyncio.run(run()).glob("screenshot-*.svg"))
    assert len(shots) == 1 and "<svg" in shots[0].read_text()[:200]


def test_dashboard_start_up_errors_are_one_line(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    proc = subprocess.run([sys.executable, "-m", "tui", "digits", "--set", "distillation.temperature=nan",
                           "--run-dir", str(tmp_path / "r")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert_one_line_error(proc, "distillation.temperature")
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_w_runs_a_temperature_sweep_and_shows_its_progress(tmp_path):
    async def run():
        app = _app(tmp_path, "training.epochs=2")
        app.sweep_temperatures = [2.0, 20.0]
        # JSMA only: C&W and the masking checks in a sweep are tests/test_sweep.py's; here the progress on screen
        app.sweep_overrides = ["training.epochs=2", "attack.samples=2", "attack.outputs=['softmax', 'softmax_T']",
                               "attack.methods=['jsma']", "attack.checks=[]"]
        seen = []
        async with app.run_test(size=(120, 40)) as pilot:
            await press_into_modal(pilot, "w", ConfirmModal, "y")

            def progressed() -> bool:
                if app.state.sweep and app.state.sweep not in seen:
                    seen.append(app.state.sweep)
                return app.state.sweep.startswith(("sweep done", "sweep failed"))

            await pilot_wait_until(pilot, progressed, timeout=300, what="the sweep's end on screen")
            await pilot.pause()
            status = _screen_text(app)
        return app.session.run_dir, seen, status

    run_dir, seen, status = asyncio.run(run())
    sweep = run_dir.parent / f"{run_dir.name}-sweep"
    assert seen[-1].startswith("sweep done"), seen
    assert any(s.startswith(("sweep 1/3 done", "sweep 2/3 done")) for s in seen), seen
    result = json.loads((sweep / "sweep.json").read_text())
    assert set(result["by_temperature"]) == {"2", "20"} and (sweep / "report.md").exists()
    assert (sweep / "success_vs_temperature.png").stat().st_size > 5000
