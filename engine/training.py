"""One training phase at temperature T: epochs, Table II schedule, batch events, pause points."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from engine.presets import TrainingConfig
from engine.temperature import loss_at_temperature, loss_scale_factor


@dataclass
class PhaseHooks:
    """How a phase talks to its session: events out, commands in, checkpoints to disk."""

    emit_batch: Callable[[int, int, float, float], None]  # epoch, batch, loss, temperature
    emit_epoch: Callable[[dict[str, Any]], None]
    pause_point: Callable[[], None]  # raises StopRequested
    take_temperature: Callable[[], float | None]  # a pending set_temperature, or None
    save_checkpoint: Callable[[int, int, float, bool], None]  # epoch, next batch, T, complete


def make_optimizer(model: nn.Module, cfg: TrainingConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def apply_schedule(optimizer: torch.optim.Optimizer, cfg: TrainingConfig, epoch: int) -> float:
    """Table II (CIFAR10): lr and momentum multiplied by their decay every `decay_every` epochs."""
    steps = epoch // cfg.decay_every
    lr = cfg.lr * cfg.lr_decay**steps
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
    replays the same batches."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + phase_index * 10_007 + epoch)
    return torch.randperm(n, generator=g)


def train_phase(model: nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainingConfig,
                x: torch.Tensor, targets: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
                device: torch.device, temperature: float, hooks: PhaseHooks, *, seed: int,
                phase_index: int, start_epoch: int = 0, start_batch: int = 0) -> dict[str, Any]:
    """Train from (start_epoch, start_batch) to cfg.epochs; return the last epoch's metrics.

    `targets` are int64 hard labels or float soft labels. A checkpoint is written after every
    epoch, so a killed process loses at most one epoch. The temperature may change between
    batches: `hooks.take_temperature` returns a new one (never during the baseline, T = 1 by definition).
    """
    n = len(x)
    batches = math.ceil(n / cfg.batch_size)
    model.train()
    metrics: dict[str, Any] = {}
    for epoch in range(start_epoch, cfg.epochs):
        lr = apply_schedule(optimizer, cfg, epoch)
        order = epoch_order(seed, phase_index, epoch, n)
        t0 = time.perf_counter()
        loss_sum, seen = 0.0, 0
        first = start_batch if epoch == start_epoch else 0
        for b in range(first, batches):
            try:
                hooks.pause_point()
            except BaseException:
                hooks.save_checkpoint(epoch, b, temperature, False)
                raise
            new_t = hooks.take_temperature()
            if new_t is not None:
                temperature = new_t
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            xb, tb = x[idx].to(device, non_blocking=True), targets[idx].to(device, non_blocking=True)
            logits = model(xb)
            loss = loss_at_temperature(logits, tb, temperature, cfg.loss_scale)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            # The unscaled cross-entropy at T: comparable across loss_scale settings.
            raw = loss.item() / loss_scale_factor(temperature, cfg.loss_scale)
            if not math.isfinite(raw):
                raise FloatingPointError(f"loss became {raw} at epoch {epoch + 1}, batch {b + 1}; lower "
                                         "training.lr or set training.grad_clip")
            loss_sum += raw * len(idx)
            seen += len(idx)
            hooks.emit_batch(epoch, b, raw, temperature)
        val_loss, val_acc = evaluate(model, x_val, y_val, device, temperature)
        metrics = {"epoch": epoch, "epochs": cfg.epochs, "train_loss": loss_sum / max(seen, 1),
                   "val_loss": val_loss, "val_accuracy": val_acc, "lr": lr, "temperature": temperature,
                   "seconds": time.perf_counter() - t0}
        hooks.emit_epoch(metrics)
        hooks.save_checkpoint(epoch + 1, 0, temperature, epoch + 1 == cfg.epochs)
    model.eval()
    return metrics

