"""A model at chance is never distilled from or attacked: its 0% JSMA-F would read as robustness."""

from __future__ import annotations

import json

import torch

from conftest import SMALL, cli
from engine.collapse import CollapseWatch, chance_level
from engine.record.events import EventType
from engine.record.rundir import iter_events


def test_the_watch_says_once_when_a_phase_that_had_learned_falls_to_chance():
    # the held-out accuracies of the T = 100 teacher that collapsed at epoch 49 of 50 (literal Table II lr)
    labels = torch.tensor([1] * 1135 + [c for c in (0, 2, 3, 4, 5, 6, 7, 8, 9) for _ in range(985)])
    chance = chance_level(labels)  # the most frequent class, "1", is 11.35% of the held-out set
    assert abs(chance - 0.1135) < 1e-9
    watch = CollapseWatch("teacher", chance)
    said = [watch.observe(e, a) for e, a in enumerate([0.579, 0.930, 0.967, 0.49, 0.944, 0.103, 0.113, 0.113])]
    assert [i for i, s in enumerate(said) if s] == [5]  # 49% is a bad epoch, not chance; said once, not per epoch
    assert said[5] == ("teacher collapsed at epoch 6: held-out accuracy 10.3% (chance 11.3%) after 96.7% at epoch 3")
    # a phase that never learned is not "collapsed" (the end-of-phase refusal covers it)
    assert all(CollapseWatch("baseline", chance).observe(e, 0.1) is None for e in range(3))


def test_a_phase_that_collapses_is_refused_and_one_that_never_learned_is_not(monkeypatch):
    """train_phase reports the collapse it saw; the refusal stops only a model that learned, then fell."""
    import pytest

    import engine.training as training
    from engine.collapse import ModelAtChance, refuse_collapsed
    from engine.networks import build_network
    from engine.presets import TrainingConfig
    from engine.training import PhaseData, PhaseHooks, make_optimizer, train_phase

    accuracies = iter([0.92, 0.95, 0.11, 0.11])  # what a collapsing phase's held-out evaluation returns
    monkeypatch.setattr(training, "evaluate", lambda *_a, **_k: (2.3, next(accuracies)))
    cfg = TrainingConfig(epochs=4, batch_size=16, optimizer="sgd", lr=0.01)
    net = build_network("mnist", 0.5)
    x, y = torch.rand(32, 1, 28, 28), torch.arange(32) % 10
    notes: list[str] = []
    hooks = PhaseHooks(emit_batch=lambda *a: None, emit_epoch=lambda m: None, pause_point=lambda: None,
                       take_temperature=lambda: None, save_checkpoint=lambda *a: None, note=notes.append)
    data = PhaseData(x, y, x, y, torch.device("cpu"), 20.0, seed=0, phase_index=1, name="teacher")
    metrics = train_phase(net, make_optimizer(net, cfg), cfg, data, hooks)
    assert metrics["collapsed"] is True
    assert len(notes) == 1 and notes[0].startswith("teacher collapsed at epoch 3: held-out accuracy 11.0%")
    assert "training.lr_decay" in notes[0]
    with pytest.raises(ModelAtChance, match="the teacher collapsed to chance: .* its soft labels would teach nothing"):
        refuse_collapsed("teacher", True, 0.11, 0.10)
    refuse_collapsed("teacher", False, 0.11, 0.10)  # never learned (a short test run): the report warns instead


def test_a_run_that_never_learned_is_not_refused(tmp_path):
    """Too few epochs leave a model near chance without a collapse: the run finishes, its accuracy is on record."""
    run = tmp_path / "run"
    args = ["run", "digits", "--run-dir", str(run), "--quiet"]
    for s in SMALL:
        if not s.startswith(("training.optimizer", "training.lr=", "training.epochs")):
            args += ["--set", s]
    args += ["--set", "training.optimizer='sgd'", "--set", "training.lr=30.0", "--set", "training.epochs=1"]
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr[-400:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["accuracy"]["baseline"] < 0.2  # at chance, and said so in the summary (and the report)
    assert not any(e.type == EventType.NOTICE and "collapsed" in e.data.text for e in iter_events(run / "events.jsonl"))
