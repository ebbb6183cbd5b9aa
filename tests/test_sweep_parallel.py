"""Several runs of a sweep at once on one machine, and the GPU share each run asks Ray for."""

from __future__ import annotations

import json

import pytest

from conftest import cli
from engine.errors import UserError
from engine.runs.events import EventType
from engine.runs.rundir import iter_events
from engine.sweeps.ray_sweep import task_gpus

TINY = ["--set", "training.epochs=2", "--set", "data.train_limit=300", "--set", "data.test_limit=100",
        "--set", "training.optimizer='adam'", "--set", "training.lr=0.003", "--set", "attack.samples=2",
        "--set", "threads=1", "--set", "attack.outputs=['softmax']", "--set", "device='cpu'",
        "--set", "attack.methods=['jsma']", "--set", "attack.checks=[]"]  # C&W and checks: test_sweep.py


def _numbers(result: dict) -> dict:
    keys = ("accuracy", "mean_abs_logit", "success_rate", "mean_features_changed")
    return {"baseline": {k: result["baseline"][k] for k in keys},
            "by_temperature": {t: {k: e[k] for k in keys} for t, e in result["by_temperature"].items()}}


@pytest.mark.slow
def test_a_parallel_sweep_gives_the_numbers_of_a_sequential_one(tmp_path):
    args = ["digits", "--temperatures", "2,20", "--quiet", *TINY]
    seq = cli("sweep", *args, "--sweep-dir", str(tmp_path / "seq"))
    assert seq.returncode == 0, seq.stderr
    par = cli("sweep", *args, "--sweep-dir", str(tmp_path / "par"), "--parallel", "3")
    assert par.returncode == 0, par.stderr
    a = json.loads((tmp_path / "seq" / "sweep.json").read_text())
    b = json.loads((tmp_path / "par" / "sweep.json").read_text())
    assert _numbers(a) == _numbers(b) and b["parallel"] == 3 and b["failed"] == {}
    progress = [e.data for e in iter_events(tmp_path / "par" / "events.jsonl") if e.type == EventType.SWEEP_PROGRESS]
    assert progress[-1].stage == "finished" and list(progress[-1].runs.values()) == ["done"] * 3
    # the three runs overlapped in time: each started before another had finished
    spans = []
    for run in ("baseline", "T-2", "T-20"):
        evs = list(iter_events(tmp_path / "par" / run / "events.jsonl"))
        spans.append((evs[0].time, evs[-1].time))
    assert max(s for s, _ in spans) < min(e for _, e in spans)


def test_ray_tasks_ask_for_gpus_from_the_cluster_not_from_the_driver():
    assert task_gpus("auto", 8.0, 4) == 0.25  # a CPU head driving GPU workers still asks for them
    assert task_gpus("auto", 0.0, 1) == 0.0
    assert task_gpus("cpu", 8.0, 1) == 0.0
    assert task_gpus("cuda", 2.0, 1) == 1.0
    with pytest.raises(UserError, match="cluster has no GPU"):
        task_gpus("cuda", 0.0, 1)


def test_parallel_takes_a_whole_number_of_at_least_one():
    proc = cli("sweep", "digits", "--parallel", "0", "--sweep-dir", "/nonexistent/never")
    assert proc.returncode == 2 and "--parallel" in proc.stderr
