"""`defdistill-engine export-tensorboard RUN_OR_SWEEP_DIR`: a run's curves as TensorBoard event files.

One TensorBoard run per run directory (a sweep's temperatures side by side, each named after its
run), written from events.jsonl alone, so it works on any finished, stopped or live run:
- loss/batch/<phase>: the batch losses as the engine reported them (x = the phase's batch count);
- loss/epoch/<phase>, accuracy/held_out/<phase>, temperature/<phase>: per epoch;
- attack/<model>/<method-or-output>: success rate of each finished attack (x = 0).
Needs the `tensorboard` extra (`pip install -e '.[tensorboard]'`).
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import RunDirError, UserError
from engine.record.events import AttackFinished, Batch, CWFinished, Epoch
from engine.record.rundir import EVENTS_FILE, iter_events


def _writer(logdir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("export-tensorboard needs TensorBoard: pip install -e '.[tensorboard]' "
                        "(or pip install tensorboard)") from None
    return SummaryWriter(log_dir=str(logdir))


def run_dirs(path: Path) -> list[Path]:
    """The run directories under `path`: itself, or a sweep's runs."""
    if (path / EVENTS_FILE).exists() and (path / "preset.toml").exists():
        return [path]
    runs = sorted(p for p in path.iterdir() if (p / EVENTS_FILE).exists() and (p / "preset.toml").exists()) \
        if path.is_dir() else []
    if not runs:
        raise RunDirError(f"{path} is neither a run directory nor a sweep directory holding runs; give the folder "
                          "`defdistill-engine run` or `sweep` wrote")
    return runs


def export_run(run_dir: Path, logdir: Path) -> dict[str, int]:
    """Write one run's scalars under logdir/<run name>; returns how many of each kind were written."""
    counts = {"batch": 0, "epoch": 0, "attack": 0}
    step: dict[str, int] = {}
    w = _writer(logdir / run_dir.name)
    try:
        for e in iter_events(run_dir / EVENTS_FILE):
            d = e.data
            if isinstance(d, Batch):
                # one scalar per report; the step counts the phase's batches so far (reports cover d.n batches)
                step[d.phase] = d.epoch * d.batches + d.batch + 1
                w.add_scalar(f"loss/batch/{d.phase}", d.loss, step[d.phase], walltime=e.time)
                counts["batch"] += 1
            elif isinstance(d, Epoch):
                for tag, value in ((f"loss/epoch/{d.phase}", d.train_loss),
                                   (f"accuracy/held_out/{d.phase}", d.val_accuracy),
                                   (f"temperature/{d.phase}", d.temperature)):
                    w.add_scalar(tag, value, d.epoch + 1, walltime=e.time)
                counts["epoch"] += 1
            elif isinstance(d, AttackFinished):
                w.add_scalar(f"attack/{d.model}/jsma_{d.output}", d.success_rate, 0, walltime=e.time)
                counts["attack"] += 1
            elif isinstance(d, CWFinished):
                first = next(iter(d.cases.values()), None)
                if first is not None:
                    w.add_scalar(f"attack/{d.model}/{d.method}", first.success_rate, 0, walltime=e.time)
                    counts["attack"] += 1
    finally:
        w.close()
    return counts


def export(path: Path, logdir: Path | None = None) -> tuple[Path, dict[str, dict[str, int]]]:
    path = Path(path)
    runs = run_dirs(path)
    out = Path(logdir) if logdir else path / "tensorboard"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot write {out} ({exc.strerror or exc}); pass --logdir with a writable folder") \
            from None
    return out, {r.name: export_run(r, out) for r in runs}
