"""Sweeps on Ray: the same runs and numbers as a local sweep, worker deaths retried and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, cli
from engine.errors import UserError
from engine.runs.events import EventType
from engine.runs.rundir import iter_events

ray = pytest.importorskip("ray")

TINY = ["--set", "training.epochs=2", "--set", "data.train_limit=300", "--set", "data.test_limit=100",
        "--set", "training.optimizer='adam'", "--set", "training.lr=0.003", "--set", "attack.samples=2",
        "--set", "threads=1", "--set", "attack.outputs=['softmax', 'softmax_T']", "--set", "device='cpu'",
        "--set", "attack.methods=['jsma']", "--set", "attack.checks=[]"]  # C&W and checks: test_sweep.py


def _strip(result: dict) -> dict:
    """The numbers a deterministic CPU run must repeat (not timings, not placement)."""
    def entry(e):
        return {k: e[k] for k in ("accuracy", "mean_abs_logit", "success_rate", "mean_features_changed", "spread")
                if k in e}
    return {"baseline": entry(result["baseline"]),
            "by_temperature": {t: entry(e) for t, e in result["by_temperature"].items()}}


@pytest.mark.slow
def test_ray_sweep_equals_local_sweep_for_equal_seeds(tmp_path):
    args = ["digits", "--temperatures", "2,20", "--seeds", "0,1", "--quiet", *TINY]
    local = cli("sweep", *args, "--sweep-dir", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    on_ray = cli("sweep", *args, "--sweep-dir", str(tmp_path / "ray"), "--ray", "--ray-cpus", "2")
    assert on_ray.returncode == 0, on_ray.stderr
    a = json.loads((tmp_path / "local" / "sweep.json").read_text())
    b = json.loads((tmp_path / "ray" / "sweep.json").read_text())
    runs = ["T-2-s0", "T-2-s1", "T-20-s0", "T-20-s1", "baseline-s0", "baseline-s1"]
    assert sorted(p.name for p in (tmp_path / "local").iterdir() if p.is_dir()) == runs
    assert sorted(p.name for p in (tmp_path / "ray").iterdir() if p.is_dir()) == runs
    assert set(a) <= set(b) and set(b) - set(a) == {"ray"}
    assert _strip(a) == _strip(b)
    assert len(b["ray"]["tasks"]) == 6 and b["failed"] == {}
    assert "spread" in b["by_temperature"]["2"] and len(b["by_temperature"]["2"]["per_seed"]) == 2
    progress = [e for e in iter_events(tmp_path / "ray" / "events.jsonl") if e.type == EventType.SWEEP_PROGRESS]
    assert progress[0].data.stage == "started" and progress[-1].data.stage == "finished"
    assert list(progress[-1].data.runs.values()).count("done") == 6
    assert "error bars" in (tmp_path / "ray" / "report.md").read_text() or "seeds" in \
        (tmp_path / "ray" / "report.md").read_text()


@pytest.mark.slow
def test_killed_ray_worker_is_retried_and_resumes_from_its_checkpoint(tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "sweep", "digits", "--temperatures", "5", "--quiet",
                             "--sweep-dir", str(sweep), "--ray", "--ray-cpus", "1", *TINY,
                             "--set", "training.epochs=8", "--set", "data.train_limit=600"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = sweep / "T-5"
    deadline = time.time() + 300
    killed = None
    while time.time() < deadline and killed is None:
        epochs = [e for e in iter_events(run / "events.jsonl") if e.type == EventType.EPOCH]
        if len(epochs) >= 3 and (run / "engine.pid").exists():
            killed = int((run / "engine.pid").read_text())
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
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
