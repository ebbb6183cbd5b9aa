"""The training step without host waits: throttled loss reports, the compiled step and its fallback,
the numerics policy, and checkpoints that carry the random-number state."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import QUICK, wait_until
from engine.networks import build_network
from engine.numerics import RNG_CPU, exact_float32, set_tf32, tf32_enabled
from engine.presets import TrainingConfig, load_preset
from engine.record.events import EventType
from engine.sessions.thread_session import ThreadSession
from engine.training import LossReport, make_optimizer
from engine.training_step import TrainStep

CPU = torch.device("cpu")


def test_loss_report_emits_at_its_rate_and_names_the_batches_of_a_non_finite_loss():
    events = []
    every = LossReport(CPU, 0.0, lambda *a: events.append(a))
    for b in range(3):
        every.add(torch.tensor(float(b)), 10, b)
        if every.due():
            every.flush(0, b, 1.0)
    assert [e[1] for e in events] == [0, 1, 2] and [e[2] for e in events] == [1, 1, 1]

    events.clear()
    slow = LossReport(CPU, 3600.0, lambda *a: events.append(a))
    for b in range(4):
        slow.add(torch.tensor(float(b)), 10 if b < 3 else 5, b)
        assert not slow.due()
    slow.flush(0, 3, 2.0)
    (epoch, batch, n, mean, t), = events
    assert (epoch, batch, n, t) == (0, 3, 4, 2.0)
    assert math.isclose(mean, (0 + 10 + 20 + 15) / 35)  # weighted by images, as the epoch loss is
    assert math.isclose(slow.epoch_sum / slow.epoch_images, mean)

    bad = LossReport(CPU, 3600.0, lambda *a: None)
    bad.add(torch.tensor(1.0), 10, 4)
    bad.add(torch.tensor(float("nan")), 10, 5)
    with pytest.raises(FloatingPointError, match="epoch 2, batches 5-6"):
        bad.flush(1, 5, 1.0)


def test_a_run_reports_a_few_batch_events_not_one_per_batch(tmp_path):
    s = ThreadSession.create(load_preset("digits", [*QUICK, "distillation.phases=['baseline']",
                                                    "training.report_seconds=60"]), tmp_path / "run")
    s.start()
    assert s.wait(120) and s.state == "finished", s.error
    batches = [e.data for e in s.history() if e.type == EventType.BATCH]
    epochs = [e.data for e in s.history() if e.type == EventType.EPOCH]
    per_epoch = math.ceil(800 / 128)
    # one report per epoch (its end), covering all of its batches
    assert len(batches) == len(epochs) == 8 and all(b.n == per_epoch and b.batch == per_epoch - 1 for b in batches)
    assert all(math.isclose(b.loss, e.train_loss, rel_tol=1e-9) for b, e in zip(batches, epochs, strict=True))


def test_tf32_is_off_inside_attacks_and_restored_after():
    set_tf32(True)
    try:
        with exact_float32():
            assert not tf32_enabled()
        assert tf32_enabled()
    finally:
        set_tf32(False)
    assert not tf32_enabled()


def _step(compile_: bool, note=lambda _t: None) -> TrainStep:
    torch.manual_seed(0)
    cfg = TrainingConfig(compile=compile_)
    model = build_network("mnist", dropout=0.0)  # no dropout: the two steps see identical arithmetic
    return TrainStep(model, make_optimizer(model, cfg), cfg, CPU, note)


def test_a_failing_compile_falls_back_to_the_plain_step_with_one_line(monkeypatch):
    notes = []

    def broken(*_a, **_k):
        raise RuntimeError("no C++ compiler\nsecond line")

    monkeypatch.setattr(torch, "compile", broken)
    step = _step(True, notes.append)
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    loss = step(x, y, 20.0)
    assert not step.compiled and torch.isfinite(loss)
    assert len(notes) == 1 and "RuntimeError: no C++ compiler" in notes[0] and "plain step" in notes[0]


@pytest.mark.slow
def test_the_compiled_step_equals_the_plain_step_and_a_temperature_change_needs_no_recompile():
    from torch._dynamo.utils import counters

    plain, compiled = _step(False), _step(True)
    assert compiled.compiled
    gen = torch.Generator().manual_seed(1)
    counters.clear()
    for i in range(4):
        x, y = torch.rand(32, 1, 28, 28, generator=gen), torch.randint(0, 10, (32,), generator=gen)
        t = 100.0 if i < 2 else 5.0  # a change from the dashboard mid-phase
        a, b = plain(x, y, t), compiled(x, y, t)
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), (i, float(a), float(b))
    assert counters["stats"]["unique_graphs"] == 1  # T is a tensor input: no new graph when it changes
    for p, q in zip(plain.model.parameters(), compiled.model.parameters(), strict=True):
        assert torch.allclose(p, q, rtol=1e-3, atol=1e-5)


def _trained_weights(run_dir) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(run_dir / "checkpoints" / "baseline.safetensors")).items()
            if k.startswith("model.")}


@pytest.mark.slow
def test_a_stopped_run_resumes_with_the_same_dropout_as_an_uninterrupted_one(tmp_path):
    over = [*QUICK, "distillation.phases=['baseline']", "training.epochs=2", "training.report_seconds=0", "threads=2"]
    whole = ThreadSession.create(load_preset("digits", over), tmp_path / "whole")
    whole.start()
    assert whole.wait(120) and whole.state == "finished", whole.error

    def stopped_copy(name: str):
        s = ThreadSession.create(load_preset("digits", over), tmp_path / name)
        s.subscribe(lambda e: s.stop() if e.type == EventType.BATCH and e.data.epoch == 1 and e.data.batch == 2
                    else None)
        s.start()
        assert s.wait(120) and s.state == "stopped"
        return s.run_dir

    def resume(run_dir):
        s = ThreadSession.resume_from(run_dir)
        s.start()
        assert s.wait(120) and s.state == "finished", s.error

    run = stopped_copy("stopped")
    resume(run)
    ref = _trained_weights(tmp_path / "whole")
    assert all(torch.equal(ref[k], v) for k, v in _trained_weights(run).items())

    # the control: the same stop and resume from a checkpoint without the random-number state
    # draws other dropout masks, so the test above can tell the difference
    bare = stopped_copy("bare")
    ckpt = bare / "checkpoints" / "baseline.safetensors"
    from safetensors import safe_open

    with safe_open(str(ckpt), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(ckpt))
    assert RNG_CPU in tensors
    del tensors[RNG_CPU]
    save_file(tensors, str(ckpt), metadata=meta)
    resume(bare)
    wait_until(lambda: (bare / "summary.json").exists(), 10, "the resumed run's summary")
    assert not all(torch.equal(ref[k], v) for k, v in _trained_weights(bare).items())
