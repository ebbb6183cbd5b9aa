"""Several runs of a sweep at once on one machine, and the GPU share each run asks Ray for."""

from __future__ import annotations

import json

import pytest

from conftest import JSMA_ONLY, SWEEP_PRESET, cli, sweep_numbers
from engine.errors import UserError
from engine.record.events import EventType
from engine.record.rundir import iter_events
from engine.sweeps.ray_sweep import task_gpus


@pytest.mark.slow
def test_a_parallel_sweep_gives_the_numbers_of_a_sequential_one(small_sweep, tmp_path):
    """The T = 5 part of the shared sequential sweep (seed 0), its two runs at once (JSMA only): the same
    numbers."""
    par = cli("sweep", *SWEEP_PRESET, "--temperatures", "5", *JSMA_ONLY, "--sweep-dir", str(tmp_path / "par"),
              "--parallel", "2")
    assert par.returncode == 0, par.stderr
    a = json.loads((small_sweep / "sweep.json").read_text())
    b = json.loads((tmp_path / "par" / "sweep.json").read_text())
    assert sweep_numbers(a, "5", seed=0) == sweep_numbers(b, "5") and b["parallel"] == 2 and b["failed"] == {}
    progress = [e.data for e in iter_events(tmp_path / "par" / "events.jsonl") if e.type == EventType.SWEEP_PROGRESS]
    assert progress[-1].stage == "finished" and list(progress[-1].runs.values()) == ["done"] * 2
    # the runs overlapped in time: each started before the other had finished
    spans = []
    for run in ("baseline", "T-5"):
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
