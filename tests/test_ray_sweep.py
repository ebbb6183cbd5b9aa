"""Sweeps on Ray: the same runs and numbers as a local sweep, worker deaths retried and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import JSMA_ONLY, ROOT, SWEEP_PRESET, cli, sweep_numbers, wait_until
from engine.errors import UserError
from engine.record.events import EventType
from engine.record.rundir import iter_events

ray = pytest.importorskip("ray")


@pytest.mark.slow
def test_a_ray_sweep_with_a_killed_worker_resumes_it_and_equals_the_local_sweep(small_sweep, tmp_path):
    """The T = 5 part of the shared local sweep (seeds 0 and 1) as Ray tasks on one CPU, with one task's
    worker killed after its teacher's second epoch: Ray retries the task, the retry resumes the run from its
    checkpoint, and every number equals the uninterrupted local sweep's."""
    sweep = tmp_path / "ray"
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "sweep", *SWEEP_PRESET, "--temperatures", "5",
                             "--seeds", "0,1", *JSMA_ONLY, "--sweep-dir", str(sweep), "--ray", "--ray-cpus", "1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = sweep / "T-5-s0"
    killed = None
    try:
        def teacher_epochs() -> int:
            return sum(1 for e in iter_events(run / "events.jsonl") if e.type == EventType.EPOCH)

        wait_until(lambda: teacher_epochs() >= 2 and (run / "engine.pid").exists() or proc.poll() is not None, 300,
                   "the T = 5 run's second teacher epoch")
        killed = int((run / "engine.pid").read_text())
        os.kill(killed, signal.SIGKILL)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    b = json.loads((sweep / "sweep.json").read_text())
    task = b["ray"]["tasks"]["T-5-s0"]
    assert task["resumed"] and task["pid"] != killed and b["failed"] == {}
    types = [e.type for e in iter_events(run / "events.jsonl")]
    assert EventType.RUN_RESUMED in types and types[-1] == EventType.FINISHED
    a = json.loads((small_sweep / "sweep.json").read_text())
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["T-5-s0", "T-5-s1", "baseline-s0", "baseline-s1"]
    assert set(a) <= set(b) and set(b) - set(a) == {"ray"}
    assert sweep_numbers(a, "5") == sweep_numbers(b, "5")  # the resumed run too: its dropout replays exactly
    assert len(b["ray"]["tasks"]) == 4
    assert "spread" in b["by_temperature"]["5"] and len(b["by_temperature"]["5"]["per_seed"]) == 2
    progress = [e for e in iter_events(sweep / "events.jsonl") if e.type == EventType.SWEEP_PROGRESS]
    assert progress[0].data.stage == "started" and progress[-1].data.stage == "finished"
    assert list(progress[-1].data.runs.values()).count("done") == 4
    assert "error bars" in (sweep / "report.md").read_text() or "seeds" in (sweep / "report.md").read_text()


def test_ray_missing_is_a_one_line_error_naming_the_extra(tmp_path, monkeypatch):
    from engine.sweeps.plan import SweepRequest
    from engine.sweeps.ray_sweep import run_sweep_on_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(UserError, match=r"defdistill\[ray\]"):
        run_sweep_on_ray(SweepRequest("digits", tmp_path / "s", temperatures=(2.0,)), address=None)


def test_bad_seeds_are_rejected():
    proc = cli("sweep", "digits", "--seeds", "0,x")
    assert proc.returncode == 2 and "--seeds" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
