"""What the dashboard knows, rebuilt from engine events alone (live, or replayed from events.jsonl).

Plain Python: no torch, no Textual. Histories are bounded, so an hour-long run stays fast.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

from engine.client import (
    DEPLOYED,
    AttackFinished,
    AttackProgress,
    AttackStarted,
    Batch,
    Checkpoint,
    CWFinished,
    Epoch,
    Event,
    Failed,
    Finished,
    Notice,
    Paused,
    PhaseFinished,
    PhaseStarted,
    Probes,
    Resumed,
    RunResumed,
    RunStarted,
    RunSummary,
    SoftLabels,
    Stopped,
    TemperatureChanged,
    VerdictMade,
    temperature_label,
)

METHOD_NAMES = {"jsma": "JSMA", "cw_l2": "CW-L2", "cw_l0": "CW-L0", "cw_linf": "CW-Linf"}
MAX_POINTS = 600  # per series; older points are merged pairwise when a series fills up


@dataclass
class Series:
    """A downsampled (x, y) series: when full, neighbouring points are averaged, halving it."""

    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    cap: int = MAX_POINTS

    def add(self, x: float, y: float) -> None:
        self.xs.append(x)
        self.ys.append(y)
        if len(self.xs) > self.cap:
            self.xs = [(self.xs[i] + self.xs[i + 1]) / 2 for i in range(0, len(self.xs) - 1, 2)]
            self.ys = [(self.ys[i] + self.ys[i + 1]) / 2 for i in range(0, len(self.ys) - 1, 2)]

    def copy(self) -> tuple[list[float], list[float]]:
        return list(self.xs), list(self.ys)


@dataclass
class AttackCounter:
    key: str
    n_attacks: int
    attempted: int = 0
    succeeded: int = 0
    attacks_per_second: float = 0.0
    done: bool = False

    @property
    def rate(self) -> float:
        return self.succeeded / self.attempted if self.attempted else 0.0


def softmax(logits: list[float], temperature: float) -> list[float]:
    z = [v / temperature for v in logits]
    m = max(z)
    e = [math.exp(v - m) for v in z]
    s = sum(e)
    return [v / s for v in e]


MAX_LOG_LINES = 200  # the event log panel keeps the newest lines; `log_total` counts all of them


@dataclass
class DashboardState:
    preset: str = ""
    dataset: str = ""
    device: str = ""
    gpu_uuid: str = ""  # NVML's UUID of the engine's GPU: the system panel finds the GPU by it
    run_dir: str = ""
    phase: str = "starting"
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    temperature: float = DEPLOYED
    distill_temperature: float = DEPLOYED
    soft_label_temperature: float | None = None  # the T that made the student's soft labels, once made
    status: str = "starting"  # running | paused | stopped | finished | failed
    eta_seconds: float | None = None
    batch_loss: dict[str, Series] = field(default_factory=dict)  # per phase, x = fractional epoch
    epoch_loss: dict[str, Series] = field(default_factory=dict)
    val_accuracy: dict[str, Series] = field(default_factory=dict)
    temperature_marks: list[tuple[str, float, float]] = field(default_factory=list)  # phase, x, new T
    probe_images: list[list[float]] = field(default_factory=list)
    probe_labels: list[int] = field(default_factory=list)
    probe_side: int = 28
    probe_logits: dict[str, list[list[float]]] = field(default_factory=dict)  # per phase, latest
    attacks: dict[str, AttackCounter] = field(default_factory=dict)
    attack_results: dict[str, AttackFinished] = field(default_factory=dict)
    cw_results: dict[str, CWFinished] = field(default_factory=dict)  # "<model>-cw_l2" ...
    verdicts: dict[str, VerdictMade] = field(default_factory=dict)  # model -> is its robustness real?
    summary: RunSummary | None = None
    log: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_LOG_LINES))
    log_total: int = 0  # lines ever noted: a viewer writes the ones past its own count
    error: str | None = None
    sweep: str = ""  # progress of a temperature sweep launched from the dashboard
    last_seq: int = 0
    _epoch_started: float | None = None
    _epoch_seconds: list[float] = field(default_factory=list)

    # -- folding events in -------------------------------------------------------------------
    def apply(self, e: Event) -> None:
        if e.seq <= self.last_seq:
            return  # a replayed event already seen
        self.last_seq = e.seq
        handler = getattr(self, f"_on_{e.type.value}", None)
        if handler is not None:
            handler(e.data, e)

    def note(self, text: str, at: float | None = None) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(time.time() if at is None else at))
        self.log.append(f"{stamp} {text}")
        self.log_total += 1

    def new_lines(self, seen: int) -> list[str]:
        """The lines noted after the first `seen` (those still kept)."""
        fresh = self.log_total - seen
        return list(self.log)[-fresh:] if fresh > 0 else []

    def _note(self, e: Event, text: str) -> None:
        self.note(text, e.time)

    def _on_run_started(self, d: RunStarted, e: Event) -> None:
        self.preset, self.dataset, self.device, self.gpu_uuid = d.preset, d.dataset, d.device, d.gpu_uuid
        self.run_dir, self.epochs = d.run_dir, d.epochs
        self.distill_temperature = d.temperature
        self.status = "running"
        word = "resumed" if isinstance(d, RunResumed) else "started"
        self._note(e, f"run {word}: {d.preset} on {d.device}")

    _on_run_resumed = _on_run_started

    def _on_probes(self, d: Probes, e: Event) -> None:
        self.probe_images, self.probe_labels, self.probe_side = d.images, d.labels, d.side

    def _on_phase_started(self, d: PhaseStarted, e: Event) -> None:
        self.phase, self.epochs, self.epoch = d.phase, d.epochs, d.start_epoch
        self.temperature = d.temperature
        self._epoch_started = e.time
        self._epoch_seconds.clear()
        for store in (self.batch_loss, self.epoch_loss, self.val_accuracy):
            store.setdefault(self.phase, Series())
        self._note(e, f"phase {d.phase} started at T={temperature_label(d.temperature)}"
                   + (f" (from epoch {d.start_epoch + 1})" if d.start_epoch else ""))

    def _on_batch(self, d: Batch, e: Event) -> None:
        self.phase, self.epoch, self.batch, self.batches = d.phase, d.epoch, d.batch, d.batches
        self.temperature = d.temperature
        self.status = "running"
        x = d.epoch + (d.batch + 1) / d.batches
        self.batch_loss.setdefault(d.phase, Series()).add(x, d.loss)
        if self._epoch_seconds:
            per_epoch = sum(self._epoch_seconds) / len(self._epoch_seconds)
            self.eta_seconds = max(0.0, (self.epochs - x) * per_epoch)

    def _on_epoch(self, d: Epoch, e: Event) -> None:
        self.epoch_loss.setdefault(d.phase, Series()).add(d.epoch + 1, d.train_loss)
        self.val_accuracy.setdefault(d.phase, Series()).add(d.epoch + 1, d.val_accuracy)
        self._epoch_seconds.append(d.seconds)
        if d.probe_logits:
            self.probe_logits[d.phase] = d.probe_logits

    def _on_checkpoint(self, d: Checkpoint, e: Event) -> None:
        if d.complete:
            self._note(e, f"checkpoint: {d.phase} complete ({d.path})")

    def _on_soft_labels(self, d: SoftLabels, e: Event) -> None:
        self.soft_label_temperature = d.temperature
        self._note(e, f"soft labels at T={temperature_label(d.temperature)}: mean max {d.mean_max:.3f}")

    def _on_temperature_changed(self, d: TemperatureChanged, e: Event) -> None:
        x = (self.epoch + (self.batch + 1) / self.batches) if self.batches else float(self.epoch)
        self.temperature_marks.append((d.phase, x, d.temperature))
        self.distill_temperature = d.temperature
        if d.phase != "baseline":
            self.temperature = d.temperature
        self._note(e, f"temperature {temperature_label(d.old)} -> {temperature_label(d.temperature)} ({d.applies})")

    def _on_notice(self, d: Notice, e: Event) -> None:
        self._note(e, d.text)

    def _on_paused(self, d: Paused, e: Event) -> None:
        self.status = "paused"
        self._note(e, "paused")

    def _on_resumed(self, d: Resumed, e: Event) -> None:
        self.status = "running"
        self._note(e, "resumed")

    def _on_phase_finished(self, d: PhaseFinished, e: Event) -> None:
        acc = d.val_accuracy
        self._note(e, f"phase {d.phase} finished in {d.seconds:.0f}s"
                   + (f", held-out accuracy {acc:.3f}" if acc is not None else ""))
        self.eta_seconds = None

    def _on_attack_started(self, d: AttackStarted, e: Event) -> None:
        self.phase = "attack"
        self.attacks[d.key] = AttackCounter(d.key, d.n_attacks)
        name = "JSMA" if d.method == "jsma" else METHOD_NAMES.get(d.method, d.method)
        self._note(e, f"{name} {d.key}: {d.n_attacks} attacks")

    def _on_attack_progress(self, d: AttackProgress, e: Event) -> None:
        c = self.attacks.setdefault(d.key, AttackCounter(d.key, d.n_attacks))
        c.attempted, c.succeeded, c.attacks_per_second = d.attempted, d.succeeded, d.attacks_per_second

    def _on_attack_finished(self, d: AttackFinished, e: Event) -> None:
        c = self.attacks.setdefault(d.key, AttackCounter(d.key, d.n_attacks))
        c.attempted, c.succeeded, c.done = d.n_attacks, d.n_succeeded, True
        c.attacks_per_second = d.attacks_per_second
        self.attack_results[d.key] = d
        self._note(e, f"JSMA {d.key}: {d.n_succeeded}/{d.n_attacks} = {100 * d.success_rate:.1f}%")

    def _on_cw_finished(self, d: CWFinished, e: Event) -> None:
        c = self.attacks.setdefault(d.key, AttackCounter(d.key, d.n_attacks))
        c.attempted, c.succeeded, c.done = d.n_attacks, d.n_succeeded, True
        c.attacks_per_second = d.attacks_per_second
        self.cw_results[d.key] = d
        first = next(iter(d.cases.items()), None)
        if first is not None:
            case, r = first
            dist = "" if r.mean_l2 is None else f", mean L2 {r.mean_l2:.2f}, L0 {r.mean_l0:.0f} px"
            self._note(e, f"{METHOD_NAMES.get(d.method, d.method)} {d.model} ({case} case): "
                       f"{r.succeeded}/{r.inputs} = {100 * r.success_rate:.1f}%{dist}")

    def _on_verdict(self, d: VerdictMade, e: Event) -> None:
        self.verdicts[d.model] = d
        self._note(e, f"verdict {d.model}: {d.text}")

    def _on_summary(self, d: RunSummary, e: Event) -> None:
        self.summary = d

    def _on_finished(self, d: Finished, e: Event) -> None:
        self.status, self.phase, self.eta_seconds = "finished", "finished", None
        self._note(e, "run finished")

    def _on_stopped(self, d: Stopped, e: Event) -> None:
        self.status = "stopped"
        self._note(e, f"stopped; {d.resume}")

    def _on_failed(self, d: Failed, e: Event) -> None:
        self.status, self.error = "failed", d.message
        self._note(e, f"FAILED: {d.message}")

    # -- views -----------------------------------------------------------------------------------
    def current_probe_logits(self) -> tuple[str, list[list[float]]] | None:
        """The latest probe logits: of the phase now training, else the last that has any."""
        if self.phase in self.probe_logits:
            return self.phase, self.probe_logits[self.phase]
        for phase in ("student", "teacher", "baseline"):
            if phase in self.probe_logits:
                return phase, self.probe_logits[phase]
        return None
