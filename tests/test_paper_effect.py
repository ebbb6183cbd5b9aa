"""The acceptance run: the embedded default preset, exactly as a user runs it, shows the paper's
effect (JSMA-F fails on the distilled student) and its masking (softmax(z/T) and Carlini & Wagner's
L2 attack on the logits do not fail). The run starts with the session (conftest's AcceptanceRun) and
this test, collected last, reads it."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_default_digits_run_shows_distillation_and_masked_gradients(acceptance_run):
    proc = acceptance_run.wait()
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = acceptance_run.run_dir
    s = json.loads((run / "summary.json").read_text())
    assert min(s["accuracy"].values()) >= 0.95, s["accuracy"]
    assert s["mean_abs_logit"]["student"] / s["mean_abs_logit"]["baseline"] >= 10
    assert s["saturated_share"] > 0.9
    attacks = {k: v["success_rate"] for k, v in s["attacks"].items()}
    assert attacks["baseline-softmax"] >= 0.80, attacks
    assert attacks["student-softmax"] <= 0.02, attacks
    # C&W's margin is a difference of logits: distillation scales it up instead of flattening it
    assert attacks["baseline-cw_l2"] == 1.0 and attacks["student-cw_l2"] == 1.0, attacks
    cw = json.loads((run / "attacks" / "student-cw_l2.json").read_text())
    assert cw["cases"]["average"]["inputs"] == 30 and 0 < cw["cases"]["average"]["mean_l2"] < 5
    assert cw["reduced"] and cw["settings"]["max_iterations"] == 500
    for model in ("baseline", "student"):  # misses attacked again with a larger budget are recorded round by round
        rec = json.loads((run / "attacks" / f"{model}-cw_l2.json").read_text())
        assert rec["n_succeeded"] == rec["n_attacks"] and rec["settings"]["escalations"] == 2
        assert all(0 <= r["reached"] <= r["attacks"] and r["max_iterations"] > 500 for r in rec["escalations"])
    # is the robustness real? the student's is masked gradients, with the checks that fired and their numbers
    verdict = s["verdict"]
    assert verdict["baseline"]["verdict"] == "no sign of masking", verdict["baseline"]["text"]
    assert verdict["student"]["verdict"] == "masked", verdict["student"]["text"]
    fired = {c["name"] for c in verdict["student"]["checks"] if c["fired"]}
    # at equal budgets: exact zeros, and JSMA on the logits winning where JSMA-F loses at the same Upsilon
    assert {"vanishing gradients", "JSMA on the logits beats JSMA-F"} <= fired, verdict["student"]["text"]
    assert "the deployed softmax's gradient" in verdict["student"]["text"]
    # every check with its n and interval: 30 inputs each (a distance comparison leaves out an input whose CW-L2
    # optimisation did not finish); the remedy of a saturated softmax, the logits, is what CW-L2 reached
    assert all(c["n"] >= 25 and c["low"] is not None for c in verdict["student"]["checks"])
    assert all(c["n"] == 30 for c in verdict["student"]["checks"] if "beats" not in c["name"])
    assert "CW-L2 on the logits reached 30/30" in verdict["student"]["remedy"], verdict["student"]["remedy"]
    honesty = s["gradient_honesty"]  # both backwards describe their forward functions
    assert honesty["baseline"]["disagreeing_inputs"] == 0 and honesty["student"]["disagreeing_inputs"] == 0
    assert attacks["student-softmax_T"] >= 0.70, attacks
    ended = json.loads((run / "attacks" / "student-softmax.json").read_text())["ended"]
    # it fails because the saturated softmax leaves no qualifying pair, not by running out of budget
    assert ended["no_pair"] >= 0.9 * sum(ended.values())
    assert s["gradient_amplitude"]["student"]["zero_share"] > s["gradient_amplitude"]["baseline"]["zero_share"]
