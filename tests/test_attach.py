"""Runs outlive the dashboard: SIGHUP, attach, the command channel's owner check, SIGKILL and resume."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading

import pytest

from conftest import LONG, SMALL, cli, copy_run, dashboard_in_a_terminal, pilot_wait_until, wait_until
from engine.record.events import EventType
from engine.record.rundir import iter_events
from engine.sessions.channel import ChannelError, CommandServer, engine_alive, send, socket_path
from engine.sessions.listing import list_runs, run_state
from engine.sessions.process_session import ProcessSession
from scripted import NO_GPU
from tui.app import DefdistillApp


def _epochs(run_dir) -> list:
    return [e for e in iter_events(run_dir / "events.jsonl") if e.type == EventType.EPOCH]


def _wait(cond, seconds=120.0):
    wait_until(cond, seconds)


def test_sighup_to_the_dashboard_leaves_the_run_going_and_attach_rebuilds_it(tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "tui", "digits", "--run-dir", str(run_dir)]
    for s in LONG:
        args += ["--set", s]
    pid, fd = dashboard_in_a_terminal(args)
    drain = threading.Thread(target=lambda: _drain(fd), daemon=True)
    drain.start()
    try:
        _wait(lambda: len(_epochs(run_dir)) >= 2)
        os.kill(pid, signal.SIGHUP)  # the SSH connection drops
        _wait(lambda: os.waitpid(pid, os.WNOHANG)[0] == pid, 30)
        n = len(list(iter_events(run_dir / "events.jsonl")))
        _wait(lambda: len(list(iter_events(run_dir / "events.jsonl"))) > n + 5, 60)  # still growing
        assert engine_alive(run_dir), "the engine died with the dashboard"

        async def attach():
            session = ProcessSession.attach(run_dir)
            app = DefdistillApp(session, telemetry=lambda: NO_GPU)
            async with app.run_test(size=(120, 40)) as pilot:
                await pilot_wait_until(pilot, lambda: len(session.history()) > 0, what="the log replayed")
                seen = session.history()
                await pilot_wait_until(pilot, lambda: app.state.last_seq >= seen[-1].seq,
                                       what="the app folded everything the session read")
                # one consistent moment: the app folds only between awaits, but the session's reader thread
                # may have read more since, so compare with the events up to what the app has folded
                folded = app.state.last_seq
                losses = {phase: series.copy() for phase, series in app.state.epoch_loss.items()}
                epochs = [e for e in session.history() if e.type == EventType.EPOCH and e.seq <= folded]
                for phase in {e.data.phase for e in epochs}:
                    xs, ys = losses[phase]
                    mine = [e for e in epochs if e.data.phase == phase]
                    assert xs == [e.data.epoch + 1 for e in mine]
                    assert ys == [e.data.train_loss for e in mine]
                assert app.state.status in ("running", "paused") and app.state.epochs == 100
                await pilot.press("p")  # the attached dashboard steers the engine
                await pilot_wait_until(pilot, lambda: session.state == "paused", what="the engine paused")
                await pilot.press("p")
                await pilot_wait_until(pilot, lambda: session.state == "running", what="the engine resumed")
            session.close()

        asyncio.run(attach())
    finally:
        if engine_alive(run_dir):
            send(run_dir, "stop")
            _wait(lambda: run_state(run_dir).state == "stopped", 60)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass


class _Dummy:
    state = "running"

    def pause(self):
        self.paused = True


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_channel_refuses_other_users():
    import shutil
    import tempfile
    from pathlib import Path

    # a folder another user can reach, so only the socket's own protections are tested
    tmp_path = Path(tempfile.mkdtemp(prefix="defdistill-chan-", dir="/tmp"))
    os.chmod(tmp_path, 0o755)
    server = CommandServer(tmp_path, _Dummy())
    try:
        assert oct(os.stat(socket_path(tmp_path)).st_mode & 0o777) == "0o600"
        assert send(tmp_path, "state")["state"] == "running"  # the owner is served

        def as_nobody() -> str:
            r, w = os.pipe()
            child = os.fork()
            if child == 0:  # never return into pytest from the fork
                out = "?"
                try:
                    os.close(r)
                    os.setgid(65534)
                    os.setuid(65534)
                    send(tmp_path, "pause")
                    out = "accepted"
                except ChannelError as exc:
                    out = str(exc)
                except BaseException as exc:
                    out = f"{type(exc).__name__}: {exc}"
                finally:
                    os.write(w, out.encode())
                    os._exit(0)
            os.close(w)
            os.waitpid(child, 0)
            return os.read(r, 4096).decode()

        # the socket's 0600 mode keeps another user out ...
        assert "Permission denied" in as_nobody()
        # ... and with the mode opened up, the engine itself still refuses by the caller's uid
        os.chmod(socket_path(tmp_path), 0o666)
        os.chmod(tmp_path, 0o777)
        assert "refused" in as_nobody()
        assert not getattr(server.session, "paused", False)
    finally:
        server.close()
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_sigkill_of_the_engine_is_interrupted_then_resume_finishes(tmp_path):
    run_dir = tmp_path / "run"
    session = ProcessSession.launch("digits", SMALL, run_dir)
    try:
        _wait(lambda: len(_epochs(run_dir)) >= 2)
        n = sum(1 for e in iter_events(run_dir / "events.jsonl") if e.type == EventType.BATCH)
        _wait(lambda: sum(1 for e in iter_events(run_dir / "events.jsonl") if e.type == EventType.BATCH) > n + 1)
        # mid-epoch now: batches past the last epoch's checkpoint
        os.kill(int((run_dir / "engine.pid").read_text()), signal.SIGKILL)
        _wait(lambda: not engine_alive(run_dir), 30)
        assert session.state == "interrupted"
        listed = {str(r.path): r.state for r in list_runs(tmp_path)}
        assert listed[str(run_dir)] == "interrupted"
        proc = cli("ps", str(tmp_path))
        assert "interrupted" in proc.stdout and str(run_dir) in proc.stdout
        res = cli("resume", str(run_dir), "--quiet")
        assert res.returncode == 0, res.stderr
        assert run_state(run_dir).state == "finished"
        # a whole run's results: every phase trained, the baseline well above chance (10%)
        accuracy = json.loads((run_dir / "summary.json").read_text())["accuracy"]
        assert set(accuracy) == {"baseline", "teacher", "student"} and accuracy["baseline"] > 0.5, accuracy
    finally:
        session.close()


def test_stop_command_stops_a_running_engine(tmp_path):
    run_dir = tmp_path / "run"
    session = ProcessSession.launch("digits", LONG, run_dir)
    try:
        _wait(lambda: len(_epochs(run_dir)) >= 1)
        proc = cli("stop", str(run_dir))
        assert proc.returncode == 0, proc.stderr
        assert "resume" in proc.stdout and run_state(run_dir).state == "stopped"
        assert not socket_path(run_dir).exists()
        again = cli("stop", str(run_dir))
        assert again.returncode == 2 and "no engine is serving" in again.stderr
    finally:
        session.close()


def test_attach_to_a_finished_run_shows_the_engines_attack_numbers(trained_run, tmp_path):
    run_dir = copy_run(trained_run.run_dir, tmp_path / "attacked")
    proc = cli("attack", str(run_dir), "--samples", "2", "--method", "jsma", "--quiet")
    assert proc.returncode == 0, proc.stderr

    async def attach():
        session = ProcessSession.attach(run_dir)
        app = DefdistillApp(session, telemetry=lambda: NO_GPU)
        async with app.run_test(size=(120, 40)) as pilot:
            n = len(list(iter_events(run_dir / "events.jsonl")))
            await pilot_wait_until(pilot, lambda: app.state.last_seq >= n, what="the whole log folded in")
            assert app.state.status == "finished"
            for path in (run_dir / "attacks").glob("*-*.json"):
                if path.name.endswith("gradients.json"):
                    continue
                rec = json.loads(path.read_text())
                c = app.state.attacks[path.stem]
                assert (c.succeeded, c.attempted) == (rec["n_succeeded"], rec["n_attacks"])
        session.close()

    asyncio.run(attach())
