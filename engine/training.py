"""One training phase at temperature T: epochs, Table II schedule, batch events, pause points."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from engine.collapse import FIX, CollapseWatch, chance_level
from engine.presets import TrainingConfig
from engine.temperature import loss_at_temperature
from engine.training_step import TrainStep


@dataclass
class PhaseHooks:
    """How a phase talks to its session: events out, commands in, checkpoints to disk."""

    # epoch, last batch, batches averaged, mean unscaled loss over them, temperature
    emit_batch: Callable[[int, int, int, float, float], None]
    emit_epoch: Callable[[dict[str, Any]], None]
    pause_point: Callable[[], None]  # raises StopRequested
    take_temperature: Callable[[], float | None]  # a pending set_temperature, or None
    save_checkpoint: Callable[[int, int, float, bool], None]  # epoch, next batch, T, complete
    # a pause or stop is pending: the losses not yet reported are reported before the engine waits
    must_wait: Callable[[], bool] = lambda: False
    note: Callable[[str], None] = lambda _text: None  # one line for the event log


def make_optimizer(model: nn.Module, cfg: TrainingConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def apply_schedule(optimizer: torch.optim.Optimizer, cfg: TrainingConfig, epoch: int) -> float:
    """Table II (CIFAR10): lr and momentum multiplied by their decay every `decay_every` epochs; during
    the first `warmup_epochs` the lr rises linearly to it (a function of the epoch alone: resumes agree)."""
    steps = epoch // cfg.decay_every
    lr = cfg.lr * cfg.lr_decay**steps
    if epoch < cfg.warmup_epochs:
        lr *= (epoch + 1) / (cfg.warmup_epochs + 1)
    for group in optimizer.param_groups:
        group["lr"] = lr
        if "momentum" in group:
            group["momentum"] = cfg.momentum * cfg.momentum_decay**steps
    return lr


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, device: torch.device, batch: int = 1000) -> torch.Tensor:
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i:i + batch].to(device)).float().cpu() for i in range(0, len(x), batch)])
    model.train(was_training)
    return out


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
             temperature: float) -> tuple[float, float]:
    """Held-out (cross-entropy at T, accuracy). Accuracy does not depend on T (argmax)."""
    logits = predict_logits(model, x, device)
    loss = loss_at_temperature(logits, y, temperature, "none").item()
    acc = (logits.argmax(1) == y).float().mean().item()
    return loss, acc


def epoch_order(seed: int, phase_index: int, epoch: int, n: int) -> torch.Tensor:
    """The shuffle of one epoch, a function of (seed, phase, epoch) alone so a resumed run
    replays the same batches. Drawn on the CPU (a millisecond per epoch, one copy to the device)
    so CPU and GPU runs of one preset see the very same batches."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + phase_index * 10_007 + epoch)
    return torch.randperm(n, generator=g)


def fits_on_device(tensors: list[torch.Tensor], device: torch.device, share: float = 0.5) -> bool:
    """Whether the dataset fits in `share` of the device's free memory (always on a CPU)."""
    if device.type != "cuda":
        return True
    free, _total = torch.cuda.mem_get_info(device)
    return sum(t.numel() * t.element_size() for t in tensors) <= share * free


def place_data(x: torch.Tensor, targets: torch.Tensor, device: torch.device,
               on_device: bool) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """The training set moved to the device once when it fits (MNIST, Fashion-MNIST, CIFAR10 all
    do on a GPU); otherwise kept on the host, pinned on CUDA, and each batch copied asynchronously."""
    if device.type == "cpu":
        return x, targets, True
    if on_device and fits_on_device([x, targets], device):
        return x.to(device), targets.to(device), True
    return x.pin_memory(), targets.pin_memory(), False


class LossReport:
    """Batch losses summed on the device and read back at most every `seconds` (0: every batch),
    so the host does not wait for the device after each batch. The non-finite check runs at the
    same rate and names the batches it covers."""

    def __init__(self, device: torch.device, seconds: float, emit: Callable[[int, int, int, float, float], None]):
        self.seconds = seconds
        self.emit = emit
        self._sum = torch.zeros((), dtype=torch.float64, device=device)
        self._images = 0
        self._batches = 0
        self._first = 0
        self._last = time.monotonic()
        self.epoch_sum = 0.0
        self.epoch_images = 0

    def add(self, loss: torch.Tensor, images: int, batch: int) -> None:
        if self._batches == 0:
            self._first = batch
        self._sum += loss.double() * images
        self._images += images
        self._batches += 1

    def due(self) -> bool:
        return self.seconds == 0 or time.monotonic() - self._last >= self.seconds

    def flush(self, epoch: int, batch: int, temperature: float) -> None:
        """Read the pending sum back (the one host wait) and emit one batch event for it."""
        if self._batches == 0:
            return
        total = float(self._sum.item())
        mean = total / self._images
        if not math.isfinite(mean):
            where = f"batch {batch + 1}" if self._batches == 1 else f"batches {self._first + 1}-{batch + 1}"
            raise FloatingPointError(f"loss became {mean} at epoch {epoch + 1}, {where}; lower training.lr or set "
                                     "training.grad_clip")
        self.emit(epoch, batch, self._batches, mean, temperature)
        self.epoch_sum += total
        self.epoch_images += self._images
        self._sum.zero_()
        self._images = self._batches = 0
        self._last = time.monotonic()

    def new_epoch(self) -> None:
        self.epoch_sum, self.epoch_images = 0.0, 0


@dataclass(frozen=True)
class PhaseData:
    """What one phase trains on, at which T, and from where it starts: the data (`targets` int64 hard
    labels or float soft labels; x_val, y_val held out), the device, the seed and the phase's index in
    the run (together they fix every epoch's batch order), and the (epoch, batch) it resumes at."""

    x: torch.Tensor
    targets: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    device: torch.device
    temperature: float
    seed: int
    phase_index: int
    name: str = "model"
    start_epoch: int = 0
    start_batch: int = 0


def train_phase(model: nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainingConfig, data: PhaseData,
                hooks: PhaseHooks) -> dict[str, Any]:
    """Train from (start_epoch, start_batch) to cfg.epochs; return the last epoch's metrics.

    `targets` are int64 hard labels or float soft labels. A checkpoint is written after every
    epoch, so a killed process loses at most one epoch. The temperature may change between
    batches: `hooks.take_temperature` returns a new one (never during the baseline, T = 1 by
    definition). The host reads the loss back only when a report is due (`cfg.report_seconds`),
    at the end of an epoch, before a pause or stop, and before a temperature change (so every
    batch event covers batches of one temperature).
    """
    x, targets, x_val, y_val, device, temperature = (data.x, data.targets, data.x_val, data.y_val, data.device,
                                                     data.temperature)
    seed, phase_index, phase_name = data.seed, data.phase_index, data.name
    start_epoch, start_batch = data.start_epoch, data.start_batch
    n = len(x)
    batches = math.ceil(n / cfg.batch_size)
    x, targets, resident = place_data(x, targets, device, cfg.data_on_device)
    x_val = x_val.to(device) if resident else x_val
    step = TrainStep(model, optimizer, cfg, device, hooks.note)
    report = LossReport(device, cfg.report_seconds, hooks.emit_batch)
    model.train()
    metrics: dict[str, Any] = {}
    watch = CollapseWatch(phase_name, chance_level(y_val))
    for epoch in range(start_epoch, cfg.epochs):
        lr = apply_schedule(optimizer, cfg, epoch)
        order = epoch_order(seed, phase_index, epoch, n).to(x.device)
        t0 = time.perf_counter()
        report.new_epoch()
        first = start_batch if epoch == start_epoch else 0
        for b in range(first, batches):
            if hooks.must_wait():
                report.flush(epoch, b - 1, temperature)
            try:
                hooks.pause_point()
            except BaseException:
                hooks.save_checkpoint(epoch, b, temperature, False)
                raise
            new_t = hooks.take_temperature()
            if new_t is not None:
                report.flush(epoch, b - 1, temperature)
                temperature = new_t
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            xb, tb = x[idx].to(device, non_blocking=True), targets[idx].to(device, non_blocking=True)
            report.add(step(xb, tb, temperature), len(idx), b)
            if report.due() or b == batches - 1:
                report.flush(epoch, b, temperature)
        val_loss, val_acc = evaluate(model, x_val, y_val, device, temperature)
        metrics = {"epoch": epoch, "epochs": cfg.epochs, "train_loss": report.epoch_sum / max(report.epoch_images, 1),
                   "val_loss": val_loss, "val_accuracy": val_acc, "lr": lr, "temperature": temperature,
                   "seconds": time.perf_counter() - t0, "compiled_step": step.compiled}
        hooks.emit_epoch(metrics)
        if (line := watch.observe(epoch, val_acc)) is not None:
            hooks.note(f"{line}; {FIX}")
        metrics["collapsed"] = watch.said
        hooks.save_checkpoint(epoch + 1, 0, temperature, epoch + 1 == cfg.epochs)
    model.eval()
    return metrics
