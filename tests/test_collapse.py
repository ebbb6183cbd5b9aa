"""A model at chance is never distilled from or attacked: its 0% JSMA-F would read as robustness."""

from __future__ import annotations

import json

import torch

from conftest import QUICK, cli
from engine.collapse import CollapseWatch, chance_level
from engine.runs.events import EventType
from engine.runs.rundir import iter_events


def test_the_watch_says_once_when_a_phase_that_had_learned_falls_to_chance():
    # the held-out accuracies of the T = 100 teacher that collapsed at epoch 48 of 50 (literal Table II lr)
    labels = torch.tensor([1] * 1135 + [c for c in (0, 2, 3, 4, 5, 6, 7, 8, 9) for _ in range(985)])
    chance = chance_level(labels)  # the most frequent class, "1", is 11.35% of the held-out set
    assert abs(chance - 0.1135) < 1e-9
    watch = CollapseWatch("teacher", chance)
    said = [watch.observe(e, a) for e, a in enumerate([0.579, 0.930, 0.967, 0.49, 0.944, 0.103, 0.113, 0.113])]
    assert [i for i, s in enumerate(said) if s] == [5]  # 49% is a bad epoch, not chance; said once, not per epoch
    assert said[5] == ("teacher collapsed at epoch 6: held-out accuracy 10.3% (chance 11.3%) after 96.7% at epoch 3")
    # a phase that never learned is not "collapsed" (the end-of-phase refusal covers it)
    assert all(CollapseWatch("baseline", chance).observe(e, 0.1) is None for e in range(3))


def test_a_run_whose_model_ends_at_chance_stops_with_one_line_and_exit_2(tmp_path):
    run = tmp_path / "run"
    args = ["run", "digits", "--run-dir", str(run), "--quiet"]
    for s in QUICK:
        if not s.startswith(("training.optimizer", "training.lr=", "training.epochs")):
            args += ["--set", s]
    # clipped steps far too large: the first updates kill every unit, the network answers one class
    args += ["--set", "training.optimizer='sgd'", "--set", "training.lr=30.0", "--set", "training.epochs=1"]
    proc = cli(*args)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-400:])
    line = proc.stderr.strip().splitlines()[-1]
    assert "the baseline ended at chance" in line and "attack numbers would mean nothing" in line, line
    assert "training.lr_decay" in line and line.count("\n") == 0
    events = list(iter_events(run / "events.jsonl"))
    assert not any(e.type == EventType.PHASE_STARTED and e.data.phase == "teacher" for e in events)
    assert not (run / "summary.json").exists()  # nothing attacked, nothing summarised
    assert json.loads((run / "meta.json").read_text())  # the run directory itself is intact
