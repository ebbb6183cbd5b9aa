"""One owner of the temperature across a kill: soft labels are made at the T the teacher finished
at, and a change in the student phase says its soft labels keep theirs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import ROOT, SMALL, cli, wait_until
from engine.record.events import AttackStarted, Batch, RunSummary, SoftLabels, TemperatureChanged
from engine.record.rundir import iter_events
from engine.sessions.channel import send

TWELVE = [*SMALL, "training.epochs=12"]


def _start(run_dir) -> subprocess.Popen:
    args = [sys.executable, "-m", "engine.cli", "run", "digits", "--run-dir", str(run_dir), "--quiet"]
    for s in TWELVE:
        args += ["--set", s]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _batches(run_dir, phase: str) -> list[Batch]:
    return [e.data for e in iter_events(run_dir / "events.jsonl")
            if isinstance(e.data, Batch) and e.data.phase == phase]


@pytest.mark.slow
def test_kill_right_after_a_teacher_temperature_change_then_resume(tmp_path):
    run_dir = tmp_path / "run"
    proc = _start(run_dir)
    try:
        wait_until(lambda: len(_batches(run_dir, "teacher")) >= 10, what="teacher batches")
        send(run_dir, "set_temperature", temperature=5.0)
        wait_until(lambda: any(b.temperature == 5.0 for b in _batches(run_dir, "teacher")), 60, "the change applied")
        os.kill(proc.pid, signal.SIGKILL)  # most likely before the epoch's checkpoint holds the new T
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    res = cli("resume", str(run_dir), "--quiet")
    assert res.returncode == 0, res.stderr
    events = list(iter_events(run_dir / "events.jsonl"))
    teacher_last_t = _batches(run_dir, "teacher")[-1].temperature
    soft = [e.data for e in events if isinstance(e.data, SoftLabels)]
    assert len(soft) == 1 and soft[0].temperature == teacher_last_t, (soft, teacher_last_t)
    assert all(b.temperature == teacher_last_t for b in _batches(run_dir, "student"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["soft_label_temperature"] == teacher_last_t
    assert [e.data for e in events if isinstance(e.data, RunSummary)][-1].soft_label_temperature == teacher_last_t


@pytest.mark.slow
def test_a_change_in_the_student_phase_says_the_soft_labels_keep_their_temperature(tmp_path):
    run_dir = tmp_path / "run"
    proc = _start(run_dir)
    try:
        wait_until(lambda: len(_batches(run_dir, "student")) >= 3, 300, "student batches")
        send(run_dir, "set_temperature", temperature=50.0)
        assert proc.wait(300) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    events = [e.data for e in iter_events(run_dir / "events.jsonl")]
    change = [d for d in events if isinstance(d, TemperatureChanged)]
    assert len(change) == 1 and change[0].phase == "student"
    assert "soft labels stay those made at T=20" in change[0].applies
    assert _batches(run_dir, "student")[-1].temperature == 50.0  # the student trains on at the new T
    assert json.loads((run_dir / "summary.json").read_text())["soft_label_temperature"] == 20.0
    # each model is attacked at the T it was trained at, read from its own checkpoint: the teacher at 20
    # (before, every non-baseline model was attacked at the run's last T, 50)
    res = cli("attack", str(run_dir), "--quiet", "--model", "teacher", "--model", "student", "--output", "softmax_T",
              "--method", "jsma", "--samples", "1")
    assert res.returncode == 0, res.stderr
    started = {d.model: d.output_temperature for d in (e.data for e in iter_events(run_dir / "events.jsonl"))
               if isinstance(d, AttackStarted)}
    assert started == {"teacher": 20.0, "student": 50.0}, started
