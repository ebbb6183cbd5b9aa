"""export-tensorboard: a run's curves read back with TensorBoard's own event reader equal the
numbers in its events.jsonl."""

from __future__ import annotations

import shutil

import pytest

from conftest import cli
from engine.record.events import Batch, Epoch
from engine.record.rundir import iter_events

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def test_export_tensorboard_scalars_match_the_event_log(trained_run, tmp_path):
    run = tmp_path / "digits-run"
    shutil.copytree(trained_run.run_dir, run, ignore=shutil.ignore_patterns("engine.lock"))
    proc = cli("export-tensorboard", str(run), "--logdir", str(tmp_path / "tb"))
    assert proc.returncode == 0, proc.stderr
    acc = event_accumulator.EventAccumulator(str(tmp_path / "tb" / "digits-run"), size_guidance={"scalars": 0})
    acc.Reload()
    events = [e.data for e in iter_events(run / "events.jsonl")]
    for phase in ("baseline", "teacher", "student"):
        epochs = [d for d in events if isinstance(d, Epoch) and d.phase == phase]
        got = acc.Scalars(f"accuracy/held_out/{phase}")
        assert [s.step for s in got] == [d.epoch + 1 for d in epochs]
        assert [s.value for s in got] == pytest.approx([d.val_accuracy for d in epochs], rel=1e-6)
        assert [s.value for s in acc.Scalars(f"temperature/{phase}")] == pytest.approx([d.temperature for d in epochs])
        batches = [d for d in events if isinstance(d, Batch) and d.phase == phase]
        assert [s.value for s in acc.Scalars(f"loss/batch/{phase}")] == pytest.approx([d.loss for d in batches],
                                                                                      rel=1e-6)
    bad = cli("export-tensorboard", str(tmp_path / "none"))
    assert bad.returncode == 2 and "neither a run directory nor a sweep" in bad.stderr
