"""Engine integration: run directories, distillation evidence, session commands, resume, crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib

import pytest

from conftest import ROOT, SMALL, assert_one_line_error, cli, copy_run, wait_until
from engine.presets import load_preset
from engine.record.events import EventType
from engine.record.rundir import iter_events
from engine.sessions.thread_session import ThreadSession


def test_finished_run_directory_is_self_describing(trained_run):
    path = trained_run.run_dir
    preset = tomllib.loads((path / "preset.toml").read_text())
    assert preset["distillation"]["temperature"] == 20.0
    meta = json.loads((path / "meta.json").read_text())
    assert meta["torch"] and meta["device"].startswith("cpu")
    for name in ("baseline", "teacher", "student", "soft_labels"):
        assert (path / "checkpoints" / f"{name}.safetensors").is_file()
    assert not list(path.rglob("*.tmp"))
    summary = json.loads((path / "summary.json").read_text())
    assert set(summary["accuracy"]) == {"baseline", "teacher", "student"}
    assert summary["accuracy"]["baseline"] > 0.9
    assert summary["seconds"] > 0 and summary["temperature"] == 20.0
    # distillation happened: the deployed student's logits are far larger than the baseline's
    assert summary["mean_abs_logit"]["student"] > 3 * summary["mean_abs_logit"]["baseline"]
    assert 0.0 <= summary["saturated_share"] <= 1.0
    # where each model's input gradient lives (engine.metrics.gradient_support), for the report and results screen
    for model, support in summary["gradient_support"].items():
        assert 0.0 < support["pixel_share"] <= 1.0 and support["n_inputs"] == 100, model
        assert len(support["dead_units"]) == 4 + 2 and 0.0 <= support["dead_unit_share"] < 1.0  # Table I's ReLUs
    assert set(summary["gradient_support"]) == {"baseline", "teacher", "student"}


def test_events_jsonl_is_the_session_stream(trained_run):
    on_disk = list(iter_events(trained_run.run_dir / "events.jsonl"))
    assert [e.seq for e in on_disk] == [e.seq for e in trained_run.history()]
    assert [e.seq for e in on_disk] == list(range(1, len(on_disk) + 1))
    types = [e.type for e in on_disk]
    assert types[0] == EventType.RUN_STARTED and types[-1] == EventType.FINISHED
    epochs = [e for e in on_disk if e.type == EventType.EPOCH]
    assert len(epochs) == 3 * 8
    assert all(0.0 <= e.data.val_accuracy <= 1.0 and e.data.train_loss >= 0 for e in epochs)


def test_soft_labels_are_teacher_softmax_at_T(trained_run):
    from engine.distillation import soft_labels

    saved, meta = trained_run.rundir.load_tensors("soft_labels")
    teacher = trained_run.rundir.load_tensors("teacher")
    assert meta["temperature"] == 20.0 and teacher[1]["complete"]
    labels = saved["soft_labels"]
    assert labels.shape == (800, 10)
    assert abs(float(labels.sum(1).mean()) - 1.0) < 1e-5
    # recompute from the saved teacher: same numbers
    from engine.checkpoints import unpack_state
    from engine.networks import build_network

    net = build_network("mnist")
    unpack_state(teacher[0], teacher[1], net, None)
    net.eval()
    again = soft_labels(net, trained_run.data.x_train, 20.0, trained_run.device)
    assert float((again - labels).abs().max()) < 1e-5


def _small_session(tmp_path, extra=()):
    preset = load_preset("digits", [*SMALL, *extra])
    return ThreadSession.create(preset, tmp_path / "run")


def test_pause_stops_batch_events_until_resume(tmp_path):
    s = _small_session(tmp_path)
    batches = []
    seen = threading.Event()
    s.subscribe(lambda e: (batches.append(e), seen.set()) if e.type == EventType.BATCH else None)
    s.start()
    assert seen.wait(60)
    s.pause()
    wait_until(lambda: any(e.type == EventType.PAUSED for e in s.history()), 60, "the engine's PAUSED event")
    assert s.state == "paused"
    n = len(batches)
    s.resume()
    wait_until(lambda: len(batches) > n, 30, "batches after resume")
    s.stop()
    assert s.wait(60)
    # the engine's own record: no batch between its PAUSED and RESUMED events
    kinds = [e.type for e in s.history()]
    paused, resumed = kinds.index(EventType.PAUSED), kinds.index(EventType.RESUMED)
    assert resumed > paused and EventType.BATCH not in kinds[paused:resumed]


def test_set_temperature_applies_at_next_batch_and_is_logged(tmp_path):
    s = _small_session(tmp_path, ["distillation.phases=['baseline', 'teacher']", "training.epochs=3"])
    teacher_batches = []
    started = threading.Event()

    def on(e):
        if e.type == EventType.BATCH and e.data.phase == "teacher":
            teacher_batches.append(e)
            started.set()

    s.subscribe(on)
    s.start()
    assert started.wait(120)
    s.pause()
    wait_until(lambda: any(e.type == EventType.PAUSED for e in s.history()), 60, "the engine's PAUSED event")
    with pytest.raises(Exception, match="impossible"):
        s.set_temperature(-1)
    s.set_temperature(5.0)
    n = len(teacher_batches)
    s.resume()
    assert s.wait(120) and s.state == "finished", s.error
    assert teacher_batches[n - 1].data.temperature == 20.0
    assert all(b.data.temperature == 5.0 for b in teacher_batches[n:])
    logged = [e for e in iter_events(s.run_dir / "events.jsonl") if e.type == EventType.TEMPERATURE_CHANGED]
    assert len(logged) == 1 and logged[0].data.old == 20.0 and logged[0].data.temperature == 5.0
    ckpt = s.rundir.load_tensors("teacher")[1]
    assert ckpt["temperature"] == 5.0


def test_stop_leaves_a_resumable_run(tmp_path):
    s = _small_session(tmp_path)
    got = threading.Event()
    s.subscribe(lambda e: got.set() if e.type == EventType.EPOCH and e.data.phase == "teacher" else None)
    s.start()
    assert got.wait(120)
    s.stop()
    assert s.wait(60) and s.state == "stopped"
    assert not (s.run_dir / "summary.json").exists()
    ckpt = s.rundir.load_tensors("teacher")[1]
    assert not ckpt["complete"]
    proc = cli("resume", str(s.run_dir), "--quiet")
    assert proc.returncode == 0, proc.stderr
    accuracy = json.loads((s.run_dir / "summary.json").read_text())["accuracy"]
    assert set(accuracy) == {"baseline", "teacher", "student"} and accuracy["baseline"] > 0.5, accuracy
    resumed = [e for e in iter_events(s.run_dir / "events.jsonl") if e.type == EventType.PHASE_STARTED
               and e.data.phase == "teacher"]
    assert resumed[-1].data.start_epoch == ckpt["epoch"] and resumed[-1].data.start_batch == ckpt["batch"]


def test_sigkill_mid_training_then_resume_loses_at_most_one_epoch(tmp_path):
    run_dir = tmp_path / "killed"
    args = [sys.executable, "-m", "engine.cli", "run", "digits", "--quiet", "--run-dir", str(run_dir)]
    for s in [*SMALL, "training.batch_size=64"]:  # four batches an epoch: the kill lands inside one
        args += ["--set", s]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        evs = list(iter_events(run_dir / "events.jsonl"))
        teacher_epochs = [e for e in evs if e.type == EventType.EPOCH and e.data.phase == "teacher"]
        batches = [e for e in evs if e.type == EventType.BATCH and e.data.phase == "teacher"]
        if len(teacher_epochs) >= 3 and batches and batches[-1].data.epoch == 3 and batches[-1].data.batch >= 1:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_epochs = len([e for e in iter_events(run_dir / "events.jsonl")
                       if e.type == EventType.EPOCH and e.data.phase == "teacher"])
    assert not (run_dir / "summary.json").exists()
    res = cli("resume", str(run_dir), "--quiet")
    assert res.returncode == 0, res.stderr
    restart = [e for e in iter_events(run_dir / "events.jsonl")
               if e.type == EventType.PHASE_STARTED and e.data.phase == "teacher"][-1]
    # every finished epoch survived: the resumed phase starts right after the last logged one
    assert restart.data.start_epoch == done_epochs
    # the resumed run finished every phase (that a resume continues the very numbers of an uninterrupted run
    # is tests/test_training_step.py's: same dropout, same weights)
    accuracy = json.loads((run_dir / "summary.json").read_text())["accuracy"]
    assert set(accuracy) == {"baseline", "teacher", "student"} and accuracy["baseline"] > 0.5, accuracy


def test_corrupt_checkpoint_on_resume_is_one_line(tmp_path, trained_run):
    run_dir = copy_run(trained_run.run_dir, tmp_path / "corrupt")
    (run_dir / "summary.json").unlink()
    ckpt = run_dir / "checkpoints" / "student.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # truncated
    before = (run_dir / "events.jsonl").read_bytes()
    proc = cli("resume", str(run_dir))
    assert_one_line_error(proc, "student.safetensors", "corrupt or truncated")
    assert not (run_dir / "summary.json").exists()
    assert (run_dir / "events.jsonl").read_bytes() == before  # nothing started, nothing appended


def test_unwritable_run_directory_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = cli("run", "digits", "--run-dir", str(blocker / "run"))
    assert_one_line_error(proc, "cannot write run directory", "--run-dir")


def test_resume_of_a_non_run_is_one_line(tmp_path):
    assert_one_line_error(cli("resume", str(tmp_path)), "not a run directory")
