"""Headless progress: one rich progress bar per phase, fed by session events."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from engine.deployment import label as temperature_label
from engine.record.events import (
    AttackProgress,
    AttackStarted,
    Batch,
    Epoch,
    Event,
    Notice,
    PhaseFinished,
    PhaseStarted,
    TemperatureChanged,
)


class HeadlessProgress:
    """Subscriber that draws a bar per training phase and per attack sweep on stderr."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description:<26}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=self.console, transient=False,
        )
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> HeadlessProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _task(self, key: str, description: str, total: int) -> int:
        if key not in self._tasks:
            self._tasks[key] = self.progress.add_task(description, total=total, info="")
        return self._tasks[key]

    def __call__(self, e: Event) -> None:
        d = e.data
        if isinstance(d, PhaseStarted):
            tid = self._task(d.phase, f"{d.phase} T={temperature_label(d.temperature)}", d.epochs)
            self.progress.update(tid, completed=d.start_epoch)
        elif isinstance(d, Batch):
            tid = self._tasks.get(d.phase)
            if tid is not None:
                self.progress.update(tid, completed=d.epoch + (d.batch + 1) / d.batches,
                                     info=f"epoch {d.epoch + 1} loss {d.loss:.4f}")
        elif isinstance(d, Epoch):
            tid = self._tasks.get(d.phase)
            if tid is not None:
                self.progress.update(tid, completed=d.epoch + 1,
                                     info=f"loss {d.train_loss:.4f} acc {d.val_accuracy:.3f}")
        elif isinstance(d, AttackStarted):
            self._task(d.key, attack_label(d), d.n_attacks)
        elif isinstance(d, AttackProgress):
            tid = self._tasks.get(d.key)
            if tid is not None:
                self.progress.update(tid, completed=d.attempted, info=f"{d.succeeded}/{d.attempted} succeeded")
        elif isinstance(d, TemperatureChanged):
            self.console.print(f"temperature {temperature_label(d.old)} -> {temperature_label(d.temperature)} "
                               f"({d.applies})")
        elif isinstance(d, Notice):  # the device chosen, a collapse, a compile fallback: said where it happens
            self.console.print(f"note: {d.text}", markup=False, highlight=False)


def attack_label(d: AttackStarted) -> str:
    """The bar's label names the attack, the model and what it is given: "jsma student softmax_T",
    "cw_l2 baseline logits", "simba student softmax"."""
    return f"{d.method} {d.model} {d.output}"


def quiet_printer(e: Event) -> None:
    """--quiet: only phase ends, one line each, for logs and scripts."""
    d = e.data
    if isinstance(d, PhaseFinished):
        acc = f"{d.val_accuracy:.4f}" if d.val_accuracy is not None else "n/a"
        print(f"{d.phase}: val_accuracy={acc} ({d.seconds:.1f}s)", file=sys.stderr)
