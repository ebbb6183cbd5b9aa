"""Sweeps on Ray: the same runs and numbers as a local sweep, worker deaths retried and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, SMALL, SWEEP_PRESET, cli, cli_process, sweep_numbers, with_sets
from engine.errors import UserError
from engine.runs.events import EventType
from engine.runs.rundir import iter_events

ray = pytest.importorskip("ray")


@pytest.mark.slow
def test_ray_sweep_equals_local_sweep_for_equal_seeds(small_sweep, tmp_path):
    """The shared local sweep (T = 2, 20, seeds 0 and 1) against its T = 20 part on Ray: equal numbers."""
    on_ray = cli_process("sweep", *SWEEP_PRESET, "--temperatures", "20", "--seeds", "0,1",
                         "--sweep-dir", str(tmp_path / "ray"), "--ray", "--ray-cpus", "2")
    assert on_ray.returncode == 0, on_ray.stderr[-2000:]
    a = json.loads((small_sweep / "sweep.json").read_text())
    b = json.loads((tmp_path / "ray" / "sweep.json").read_text())
    runs = ["T-20-s0", "T-20-s1", "baseline-s0", "baseline-s1"]
    assert sorted(p.name for p in (tmp_path / "ray").iterdir() if p.is_dir()) == runs
    assert set(a) <= set(b) and set(b) - set(a) == {"ray"}
    assert sweep_numbers(a, "20") == sweep_numbers(b, "20")
    assert len(b["ray"]["tasks"]) == 4 and b["failed"] == {}
    assert "spread" in b["by_temperature"]["20"] and len(b["by_temperature"]["20"]["per_seed"]) == 2
    progress = [e for e in iter_events(tmp_path / "ray" / "events.jsonl") if e.type == EventType.SWEEP_PROGRESS]
    assert progress[0].data.stage == "started" and progress[-1].data.stage == "finished"
    assert list(progress[-1].data.runs.values()).count("done") == 4
    assert "error bars" in (tmp_path / "ray" / "report.md").read_text() or "seeds" in \
        (tmp_path / "ray" / "report.md").read_text()


@pytest.mark.slow
def test_killed_ray_worker_is_retried_and_resumes_from_its_checkpoint(tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "sweep", "digits", "--temperatures", "5", "--quiet",
                             "--sweep-dir", str(sweep), "--ray", "--ray-cpus", "1",
                             *with_sets(*SMALL, "training.epochs=6", "threads=1", "attack.samples=1",
                                        "attack.outputs=['softmax']", "attack.methods=['jsma']", "attack.checks=[]")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = sweep / "T-5"
    deadline = time.time() + 300
    killed = None
    while time.time() < deadline and killed is None:
        epochs = [e for e in iter_events(run / "events.jsonl") if e.type == EventType.EPOCH]
        if len(epochs) >= 2 and (run / "engine.pid").exists():
            killed = int((run / "engine.pid").read_text())
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    assert killed, "the run never got going"
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    result = json.loads((sweep / "sweep.json").read_text())
    assert result["failed"] == {} and "5" in result["by_temperature"]
    task = result["ray"]["tasks"]["T-5"]
    assert task["resumed"] and task["pid"] != killed
    types = [e.type for e in iter_events(run / "events.jsonl")]
    assert EventType.RUN_RESUMED in types and types[-1] == EventType.FINISHED


def test_ray_missing_is_a_one_line_error_naming_the_extra(tmp_path, monkeypatch):
    from engine.sweeps.ray_sweep import run_sweep_on_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(UserError, match=r"defdistill\[ray\]"):
        run_sweep_on_ray("digits", [], [2.0], tmp_path / "s", address=None)


def test_bad_seeds_are_rejected():
    proc = cli("sweep", "digits", "--seeds", "0,x")
    assert proc.returncode == 2 and "--seeds" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
