"""Requests as values: what a person asks of a run's attacks or of a sweep is checked once, where it is
made (the dashboard's screen, the command line), with one line naming the problem and the fix."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT
from engine.errors import UserError
from engine.sessions.job import Job
from engine.steps.request import AttackRequest
from engine.sweeps.plan import SweepRequest


def test_an_attack_request_travels_as_json_and_comes_back_equal():
    req = AttackRequest(models=["student"], outputs=["softmax", "logits"], samples=3, methods=["jsma"], checks=True)
    assert req.models == ("student",) and req.outputs == ("softmax", "logits")  # lists held as tuples
    assert AttackRequest.from_dict(req.to_dict()) == req
    job = Job.attack("/tmp/run", req)
    assert Job.from_json(job.to_json()).request == req  # an engine process is asked exactly this


@pytest.mark.parametrize(("fields", "named"), [
    ({"samples": 0}, "samples"), ({"samples": True}, "samples"), ({"samples": "3"}, "samples"),
    ({"models": ["pupil"]}, "pupil"), ({"outputs": "softmax"}, "not a list"), ({"methods": ["fgsm"]}, "fgsm"),
    ({"checks": "yes"}, "checks"),
])
def test_a_bad_attack_request_is_one_line_naming_the_problem(fields, named):
    with pytest.raises(UserError) as err:
        AttackRequest(**fields)
    assert named in str(err.value) and "\n" not in str(err.value)


def test_an_attack_request_from_the_channel_with_unknown_keys_is_refused():
    with pytest.raises(UserError, match="unknown keys"):
        AttackRequest.from_dict({"models": None, "sample": 3})


@pytest.mark.functional
def test_the_command_line_refuses_a_bad_attack_before_opening_the_run(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "engine", "attack", str(tmp_path / "absent"), "--samples", "0"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and "samples" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_sweep_request_checks_its_temperatures_and_seeds(tmp_path):
    req = SweepRequest("digits", str(tmp_path), overrides=["training.epochs=1"], temperatures=[20, 2, 20],
                       seeds=[1, 0])
    assert req.temperatures == (2.0, 20.0) and req.sweep_dir == tmp_path and req.overrides == ("training.epochs=1",)
    for bad in ({"temperatures": [0]}, {"temperatures": [float("nan")]}, {"seeds": [-1]}, {"seeds": [1.5]}):
        with pytest.raises(UserError) as err:
            SweepRequest("digits", tmp_path, **bad)
        assert "\n" not in str(err.value)
