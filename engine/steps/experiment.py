"""The engine thread's work: baseline -> teacher -> soft labels -> student -> summary -> attacks.

Every step checks the run directory first, so the same code starts a run and resumes one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from engine.checkpoints import pack_state, unpack_state
from engine.collapse import chance_level, collapse_logged, refuse_collapsed
from engine.data import DatasetSplit
from engine.deployment import DEPLOYED, SURROGATE, trained_temperature
from engine.deployment import label as temperature_label
from engine.distillation import mean_abs_logit, saturated_share, soft_labels
from engine.errors import CheckpointError
from engine.metrics import gradient_support
from engine.model_factory import build_model
from engine.numerics import restore_rng_state, rng_state
from engine.presets import Preset
from engine.record.events import (
    Batch,
    Checkpoint,
    Epoch,
    Event,
    EventType,
    GradientSupport,
    Notice,
    Paused,
    Payload,
    PhaseFinished,
    PhaseStarted,
    Probes,
    Resumed,
    RunSummary,
    SoftLabels,
    TemperatureChanged,
)
from engine.record.rundir import RunDir, iter_events
from engine.steps.context import TrainedModel
from engine.steps.control import Control
from engine.training import PhaseData, PhaseHooks, evaluate, make_optimizer, predict_logits, train_phase

PHASE_ORDER = ("baseline", "teacher", "student")
N_PROBES = 8
SUPPORT_INPUTS = 100  # held-out inputs the gradient support is measured on (the reference's attacked n)
Emit = Callable[[Payload], Event]


def fit_checkpoint(rundir: RunDir, phase: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                   model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> tuple[bool, int, int, float]:
    """A phase's checkpoint loaded into its network (and optimizer): (complete, epoch, batch, temperature).
    One that does not fit is a CheckpointError naming the file and the fix."""
    try:
        unpack_state(tensors, meta, model, optimizer)
        return (bool(meta.get("complete")), int(meta["epoch"]), int(meta["batch"]), float(meta["temperature"]))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # load_state_dict: RuntimeError
        raise CheckpointError(f"checkpoint {rundir.checkpoint_path(phase)} does not fit this run "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:80]}); delete it to redo "
                              f"the {phase} phase from scratch") from None


def check_checkpoints(rundir: RunDir, preset: Preset) -> None:
    """Every phase checkpoint of a run read and fitted into a fresh network before an engine starts on it:
    a damaged one is one error, and nothing of the run is written (no event, no state change)."""
    for phase in preset.distillation.phases:
        saved = rundir.load_tensors(phase)
        if saved is not None:
            fit_checkpoint(rundir, phase, *saved, build_model(preset, load_weights=False), None)


class Experiment:
    def __init__(self, preset: Preset, data: DatasetSplit, rundir: RunDir, device: torch.device,
                 emit: Emit, control: Control) -> None:
        self.preset = preset
        self.data = data
        self.rundir = rundir
        self.device = device
        self.emit = emit
        self.control = control
        self.temperature = preset.distillation.temperature
        self.models: dict[str, nn.Module] = {}
        self.phase: str | None = None
        self.soft_label_t: float | None = None  # the T that made the student's soft labels, once known
        self.trained_at: dict[str, float] = {}  # each trained model's T, as its complete checkpoint says

    def attack_temperature(self, model: str) -> float:
        """The T a model is attacked at (JSMA on softmax(z/T), the checks' training-T outputs): the T it
        was trained at, from its own checkpoint; a teacher stays at its T after a change in the student phase."""
        return self.trained_at.get(model, trained_temperature(model, self.temperature))

    def trained(self, name: str) -> TrainedModel:
        return TrainedModel(name=name, network=self.models[name], temperature=self.attack_temperature(name))

    def resume_temperature(self) -> None:
        """On resume, the distillation T from the checkpoints alone: the newest phase's checkpoint records
        the T its next batch trains at, and the one the next phase starts from (a change made during the
        baseline, for the teacher, included)."""
        for phase in reversed(PHASE_ORDER):
            saved = self.rundir.load_tensors(phase)
            if saved is not None:
                meta = saved[1]
                t = meta.get("distill_temperature", meta.get("temperature") if phase != "baseline" else None)
                if t is not None:
                    self.temperature = float(t)
                return

    # -- commands arriving at pause points ------------------------------------------------
    def pause_point(self) -> None:
        self.control.pause_point(lambda: self.emit(Paused(phase=self.phase)),
                                 lambda: self.emit(Resumed(phase=self.phase)))

    def _take_temperature(self, phase: str) -> float | None:
        """Apply a pending set_temperature: the new T for `phase`'s next batch (None during the
        baseline, which stays at T = 1; the new T then applies from the teacher on)."""
        new_t = self.control.take_temperature()
        if new_t is None:
            return None
        old, self.temperature = self.temperature, new_t
        if phase == "baseline":
            applies = "teacher (the baseline is T = 1 by definition)"
        elif phase == "student" and self.soft_label_t is not None:
            applies = ("student's next batch; its soft labels stay those made at "
                       f"T={temperature_label(self.soft_label_t)}")
        else:
            applies = "next batch"
        self.emit(TemperatureChanged(phase=phase, old=old, temperature=new_t, applies=applies))
        return new_t if phase != "baseline" else None

    # -- probes: what the confidence panel shows, as plain numbers --------------------------
    def emit_probes(self) -> None:
        x = self.data.x_test[:N_PROBES]
        self.emit(Probes(labels=self.data.y_test[:N_PROBES].tolist(),
                         images=[[round(v, 3) for v in img.mean(0).flatten().tolist()] for img in x],
                         side=int(x.shape[-1])))

    def probe_logits(self, model: nn.Module) -> list[list[float]]:
        """Logits of the probe inputs; a viewer applies softmax(z/T) for whichever T it shows."""
        return predict_logits(model, self.data.x_test[:N_PROBES], self.device).tolist()

    # -- phases ---------------------------------------------------------------------------
    @staticmethod
    def _phase_index(phase: str) -> int:
        return PHASE_ORDER.index(phase) if phase in PHASE_ORDER else len(PHASE_ORDER)

    def _new_model(self, phase: str, preset: Preset) -> nn.Module:
        torch.manual_seed(self.preset.seed * 100 + self._phase_index(phase))
        return build_model(preset, load_weights=False).to(self.device)

    def _load_trained(self, phase: str, preset: Preset) -> None:
        """network.weights: the researcher's trained model is the run's baseline (or its named surrogate),
        loaded and checkpointed like a trained one (so attacks, verdicts and resumes read it the same way),
        never trained here."""
        model = build_model(preset).to(self.device)
        self.emit(PhaseStarted(phase=phase, temperature=DEPLOYED, epochs=0, start_epoch=0, start_batch=0,
                               train_size=len(self.data.y_train)))
        self.emit(Notice(text=f"{phase}: weights loaded from {preset.network.weights} "
                              f"({preset.network.factory or 'Table I net'}); not trained"))
        optimizer = make_optimizer(model, self.preset.training)
        tensors, meta = pack_state(model, optimizer)
        meta.update(phase=phase, epoch=0, batch=0, temperature=DEPLOYED, complete=True,
                    distill_temperature=self.temperature)
        path = self.rundir.save_tensors(phase, tensors, meta)
        self.emit(Checkpoint(phase=phase, epoch=0, batch=0, complete=True,
                             path=str(path.relative_to(self.rundir.path))))
        model.eval()
        self.models[phase] = model
        self.trained_at[phase] = DEPLOYED
        accuracy = evaluate(model, self.data.x_test, self.data.y_test, self.device, DEPLOYED)[1]
        self.emit(PhaseFinished(phase=phase, seconds=0.0, val_accuracy=accuracy, temperature=DEPLOYED))

    def _train(self, phase: str, targets: torch.Tensor, temperature: float, preset: Preset | None = None) -> None:
        preset = preset or self.preset  # the network to build: the surrogate's differs from the run's
        cfg = self.preset.training
        saved = self.rundir.load_tensors(phase)
        if saved is None and preset.network.weights:
            self._load_trained(phase, preset)
            return
        model = self._new_model(phase, preset)
        optimizer = make_optimizer(model, cfg)
        start_epoch = start_batch = 0
        if saved is not None:
            tensors, meta = saved
            complete, start_epoch, start_batch, saved_t = fit_checkpoint(self.rundir, phase, tensors, meta, model,
                                                                         optimizer)
            restore_rng_state(tensors, self.device)  # dropout after a resume replays the uninterrupted run's
            if phase != "baseline":
                # The checkpoint is the one record of the T this phase trained at when it was saved: a
                # change logged after it (a kill before the next checkpoint) never reached the weights,
                # so the run goes on, and the soft labels are made, at the checkpoint's T.
                temperature = self.temperature = saved_t
            if complete:
                model.eval()
                self.models[phase] = model
                self.trained_at[phase] = saved_t
                self._refuse_collapsed(phase, model, False, resumed=True)  # stops where the first session did
                return
        self.phase = phase
        self.emit(PhaseStarted(phase=phase, temperature=temperature, epochs=cfg.epochs, start_epoch=start_epoch,
                               start_batch=start_batch, train_size=len(targets)))
        t0 = time.perf_counter()
        batches = -(-len(targets) // cfg.batch_size)

        def save(epoch: int, batch: int, t: float, complete: bool) -> None:
            tensors, meta = pack_state(model, optimizer)
            tensors.update(rng_state(self.device))
            meta.update(phase=phase, epoch=epoch, batch=batch, temperature=t, complete=complete,
                        distill_temperature=self.temperature)
            path = self.rundir.save_tensors(phase, tensors, meta)
            self.emit(Checkpoint(phase=phase, epoch=epoch, batch=batch, complete=complete,
                                 path=str(path.relative_to(self.rundir.path))))

        hooks = PhaseHooks(
            emit_batch=lambda e, b, k, loss, t: self.emit(Batch(phase=phase, epoch=e, batch=b, batches=batches,
                                                                loss=loss, temperature=t, n=k)),
            emit_epoch=lambda m: self.emit(Epoch(phase=phase, **m, probe_logits=self.probe_logits(model))),
            pause_point=self.pause_point,
            take_temperature=lambda: self._take_temperature(phase),
            save_checkpoint=save,
            must_wait=lambda: self.control.paused or self.control.stop_requested,
            note=lambda text: self.emit(Notice(text=text)),
        )
        metrics = train_phase(model, optimizer, cfg, PhaseData(
            self.data.x_train, targets, self.data.x_test, self.data.y_test, self.device, temperature,
            seed=self.preset.seed, phase_index=self._phase_index(phase), name=phase, start_epoch=start_epoch,
            start_batch=start_batch), hooks)
        self.models[phase] = model
        self.trained_at[phase] = float(metrics.get("temperature", temperature))
        self.emit(PhaseFinished(phase=phase, seconds=time.perf_counter() - t0, val_accuracy=metrics.get("val_accuracy"),
                                temperature=metrics.get("temperature", temperature)))
        self._refuse_collapsed(phase, model, bool(metrics.get("collapsed")), resumed=saved is not None)

    def _refuse_collapsed(self, phase: str, model: nn.Module, collapsed: bool, resumed: bool) -> None:
        """A model that collapsed to chance is neither distilled from nor attacked (its 0% JSMA-F would
        read as robustness). A resumed phase's watch saw only its own epochs, so a collapse an earlier
        session logged counts too; only then is the event log read."""
        if not collapsed and resumed:
            notices = [e.data.text for e in iter_events(self.rundir.events_path) if e.type == EventType.NOTICE]
            collapsed = collapse_logged(notices, phase)
        if collapsed:
            accuracy = evaluate(model, self.data.x_test, self.data.y_test, self.device, DEPLOYED)[1]
            refuse_collapsed(phase, collapsed, accuracy, chance_level(self.data.y_test))

    def _soft_labels(self) -> tuple[torch.Tensor, float]:
        saved = self.rundir.load_tensors("soft_labels")
        if saved is not None:
            tensors, meta = saved
            try:
                labels, t = tensors["soft_labels"], float(meta["temperature"])
                if labels.shape != (len(self.data.y_train), 10):
                    raise ValueError(f"shape {tuple(labels.shape)}, expected ({len(self.data.y_train)}, 10)")
            except (KeyError, TypeError, ValueError) as exc:
                raise CheckpointError(f"checkpoint {self.rundir.checkpoint_path('soft_labels')} does not fit this run "
                                      f"({type(exc).__name__}: {str(exc)[:80]}); delete it to make the soft labels "
                                      "again from the teacher") from None
            return labels, t
        t = self.temperature
        labels = soft_labels(self.models["teacher"], self.data.x_train, t, self.device)
        self.rundir.save_tensors("soft_labels", {"soft_labels": labels}, {"temperature": t})
        agree = (labels.argmax(1) == self.data.y_train).float().mean().item()
        self.emit(SoftLabels(temperature=t, n=len(labels), mean_max=labels.max(1).values.mean().item(),
                             agreement_with_hard_labels=agree))
        return labels, t

    def run_training(self) -> None:
        phases = self.preset.distillation.phases
        if "baseline" in phases:
            self._train("baseline", self.data.y_train, trained_temperature("baseline", self.temperature))
        if "teacher" in phases:
            self._train("teacher", self.data.y_train, self._teacher_temperature())
        if "student" in phases:
            labels, t = self._soft_labels()
            self.temperature = self.soft_label_t = t
            self._train("student", labels, t)

    def transfer_source(self, name: str) -> tuple[str, nn.Module] | None:
        """The model whose examples are replayed on `name` (transfer evidence), with its label: for a
        trained-at-T model the undistilled baseline; for the baseline a network trained apart on the same
        data: the preset's named surrogate, else the teacher, else a Table I net trained here at T = 1."""
        if name != "baseline":
            return ("the baseline", self.models["baseline"]) if "baseline" in self.models else None
        named = self.preset.attack.surrogate.named
        if not named and "teacher" in self.models:
            return "the teacher", self.models["teacher"]
        if SURROGATE not in self.models:
            from engine.model_factory import surrogate_preset

            self.emit(Notice(text="training a surrogate for the baseline's transfer evidence: "
                                  + (self.preset.attack.surrogate.factory or "a Table I net") + " on the same data"))
            phase = self.phase
            self._train(SURROGATE, self.data.y_train, trained_temperature(SURROGATE, self.temperature),
                        surrogate_preset(self.preset))
            self.models[SURROGATE].eval()
            self.phase = phase
        return "the surrogate", self.models[SURROGATE]

    def _teacher_temperature(self) -> float:
        # a temperature set after the baseline's last batch is the teacher's from its first batch
        self._take_temperature("teacher")
        return self.temperature

    # -- results --------------------------------------------------------------------------
    def training_summary(self) -> RunSummary:
        x, y = self.data.x_test, self.data.y_test
        accuracy: dict[str, float] = {}
        logit_size: dict[str, float] = {}
        saturated: dict[str, float] = {}
        support: dict[str, GradientSupport] = {}
        for name, model in self.models.items():
            support[name] = GradientSupport(**gradient_support(model, x[:SUPPORT_INPUTS], self.device))
            logits = predict_logits(model, x, self.device)
            accuracy[name] = evaluate(model, x, y, self.device, DEPLOYED)[1]
            logit_size[name] = mean_abs_logit(logits)
            saturated[name] = saturated_share(logits)
        ratio = (logit_size["student"] / logit_size["baseline"]
                 if "student" in logit_size and "baseline" in logit_size else None)
        return RunSummary(preset=self.preset.name, dataset=self.data.name, data_note=self.data.note,
                          temperature=self.temperature, deployed_temperature=DEPLOYED,
                          soft_label_temperature=self.soft_label_t, accuracy=accuracy, mean_abs_logit=logit_size,
                          saturated_share=saturated.get("student"), saturated_share_by_model=saturated,
                          gradient_support=support, logit_ratio_student_baseline=ratio)
