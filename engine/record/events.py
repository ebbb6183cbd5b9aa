"""The engine -> dashboard contract: one frozen dataclass per event type.

The engine emits these, events.jsonl stores them (one JSON object per line: type, seq, time,
data), and every reader (the dashboard's state, the run listing, the headless progress, the test
fixtures) gets them back typed. A line a reader cannot use (binary, invalid UTF-8, valid JSON of
the wrong shape, a type from a newer version) is skipped and counted, never raised.

SCHEMA_VERSION goes into meta.json; bump it when a field changes meaning or disappears. Adding a
field with a default is compatible both ways (older readers ignore unknown fields).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum
from functools import cache
from typing import Any, ClassVar

from pydantic import TypeAdapter, ValidationError

from engine.deployment import DEPLOYED

# 3: the attack events name which T they hold: AttackStarted / AttackFinished `output_temperature` (the T inside
# the attacked output), CWFinished `model_temperature` (the T the model was trained at); version 2 called both
# `temperature` (and AttackStarted held the model's T for C&W): read back under their new names (RENAMED).
SCHEMA_VERSION = 3


class EventType(str, Enum):  # noqa: UP042 (str() and f-strings of a member keep their form)
    RUN_STARTED = "run_started"
    RUN_RESUMED = "run_resumed"
    PROBES = "probes"  # the held-out inputs the dashboard's confidence panel shows
    PHASE_STARTED = "phase_started"
    PHASE_FINISHED = "phase_finished"
    BATCH = "batch"
    EPOCH = "epoch"
    CHECKPOINT = "checkpoint"
    SOFT_LABELS = "soft_labels"
    TEMPERATURE_CHANGED = "temperature_changed"
    PAUSED = "paused"
    RESUMED = "resumed"
    ATTACK_STARTED = "attack_started"
    ATTACK_PROGRESS = "attack_progress"
    ATTACK_FINISHED = "attack_finished"
    CW_FINISHED = "cw_finished"  # a Carlini & Wagner attack's results
    VERDICT = "verdict"  # is the robustness real? the checks and the verdict for one model
    SUMMARY = "summary"
    STOPPED = "stopped"
    FINISHED = "finished"
    FAILED = "failed"
    NOTICE = "notice"  # one line for the event log (the device "auto" chose, a compile fallback)
    SWEEP_PROGRESS = "sweep_progress"  # a sweep's own log: which runs are pending, running, done, failed


# -- payloads: what each event says ----------------------------------------------------------------
@dataclass(frozen=True)
class Payload:
    TYPE: ClassVar[EventType]


@dataclass(frozen=True)
class RunStarted(Payload):
    TYPE: ClassVar[EventType] = EventType.RUN_STARTED
    preset: str
    dataset: str
    data_note: str
    device: str
    phases: list[str]
    temperature: float  # the distillation temperature in force at the start
    epochs: int
    run_dir: str
    train_size: int
    test_size: int
    device_requested: str = ""  # the preset's device: "auto", "cpu" or "cuda"
    gpu_uuid: str = ""  # NVML's UUID of the engine's GPU (MIG UUID under MIG); "" on a CPU


@dataclass(frozen=True)
class RunResumed(RunStarted):
    TYPE: ClassVar[EventType] = EventType.RUN_RESUMED


@dataclass(frozen=True)
class Probes(Payload):
    TYPE: ClassVar[EventType] = EventType.PROBES
    labels: list[int]
    images: list[list[float]]  # channel-mean pixels, row-major, side x side
    side: int


@dataclass(frozen=True)
class PhaseStarted(Payload):
    TYPE: ClassVar[EventType] = EventType.PHASE_STARTED
    phase: str
    temperature: float
    epochs: int
    start_epoch: int
    start_batch: int
    train_size: int


@dataclass(frozen=True)
class PhaseFinished(Payload):
    TYPE: ClassVar[EventType] = EventType.PHASE_FINISHED
    phase: str
    seconds: float
    val_accuracy: float | None
    temperature: float


@dataclass(frozen=True)
class Batch(Payload):
    TYPE: ClassVar[EventType] = EventType.BATCH
    phase: str
    epoch: int
    batch: int
    batches: int
    loss: float  # the unscaled cross-entropy at T, averaged over the `n` batches up to `batch`
    temperature: float
    n: int = 1  # batches this event reports: the engine reads the loss back a few times a second


@dataclass(frozen=True)
class Epoch(Payload):
    TYPE: ClassVar[EventType] = EventType.EPOCH
    phase: str
    epoch: int
    epochs: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    lr: float
    temperature: float
    seconds: float
    probe_logits: list[list[float]] = field(default_factory=list)
    compiled_step: bool = False  # the epoch ran the torch.compile'd training step


@dataclass(frozen=True)
class Checkpoint(Payload):
    TYPE: ClassVar[EventType] = EventType.CHECKPOINT
    phase: str
    epoch: int
    batch: int
    complete: bool
    path: str


@dataclass(frozen=True)
class SoftLabels(Payload):
    TYPE: ClassVar[EventType] = EventType.SOFT_LABELS
    temperature: float  # the T that made them: the student trains at this T
    n: int
    mean_max: float
    agreement_with_hard_labels: float


@dataclass(frozen=True)
class TemperatureChanged(Payload):
    TYPE: ClassVar[EventType] = EventType.TEMPERATURE_CHANGED
    phase: str
    old: float
    temperature: float
    applies: str  # in words: when the new T takes effect


@dataclass(frozen=True)
class Notice(Payload):
    """One line for the event log: what the engine chose or fell back to (device, compiled step)."""

    TYPE: ClassVar[EventType] = EventType.NOTICE
    text: str


@dataclass(frozen=True)
class Paused(Payload):
    TYPE: ClassVar[EventType] = EventType.PAUSED
    phase: str | None


@dataclass(frozen=True)
class Resumed(Payload):
    TYPE: ClassVar[EventType] = EventType.RESUMED
    phase: str | None


@dataclass(frozen=True)
class AttackStarted(Payload):
    TYPE: ClassVar[EventType] = EventType.ATTACK_STARTED
    key: str  # "<model>-<output>"
    model: str
    output: str
    n_attacks: int
    samples: int
    # the T inside the attacked output (1 for softmax and the logits, the model's training T for softmax_T);
    # None for C&W, which attacks the logits
    output_temperature: float | None
    method: str = "jsma"  # jsma | cw_l2 | cw_l0 | cw_linf


@dataclass(frozen=True)
class AttackProgress(Payload):
    TYPE: ClassVar[EventType] = EventType.ATTACK_PROGRESS
    key: str
    n_attacks: int
    attempted: int
    succeeded: int
    attacks_per_second: float


@dataclass(frozen=True)
class Example:
    """One adversarial example with its original, as plain numbers (channel means, row-major)."""

    label: int
    target: int
    success: bool
    prediction: int
    side: int
    x: list[float]
    x_adv: list[float]


@dataclass(frozen=True)
class AttackFinished(Payload):
    """Everything attacks/<key>.json holds, plus a few examples to draw."""

    TYPE: ClassVar[EventType] = EventType.ATTACK_FINISHED
    key: str
    model: str
    output: str
    output_temperature: float  # the T inside the attacked output (1: softmax, logits; training T: softmax_T)
    success_rate: float
    n_attacks: int
    n_succeeded: int
    samples: int
    mean_features_changed: float | None
    ended: dict[str, int]
    no_pair_rule: str
    seconds: float
    attacks_per_second: float
    matrix: dict[str, list[list[int]]]
    mean_pixels_changed: float | None = None
    unconstrained_steps: int = 0
    theta: float = 1.0
    upsilon: float = 0.145
    max_iterations: int = 0
    n_features: int = 0
    rho_adv: float | None = None
    inputs: int = 0
    inputs_no_target_reached: int = 0
    is_lower_bound: bool = False
    inputs_digest: str = ""  # which held-out inputs were attacked: equal digests = paired comparisons
    checkpoint: str = ""  # digest of the weights attacked (engine.checkpoints.model_digest)
    examples: list[Example] = field(default_factory=list)


@dataclass(frozen=True)
class CWCase:
    """One of C&W's target choices: average (a random wrong target per input), best or worst over 9."""

    success_rate: float  # share of inputs
    inputs: int
    succeeded: int
    mean_l0: float | None  # pixels changed, over successful inputs
    mean_l2: float | None
    mean_linf: float | None


@dataclass(frozen=True)
class CWFinished(Payload):
    """Everything attacks/<model>-<method>.json holds, plus a few examples to draw."""

    TYPE: ClassVar[EventType] = EventType.CW_FINISHED
    key: str  # "<model>-<method>"
    model: str
    method: str  # cw_l2 | cw_l0 | cw_linf
    model_temperature: float  # the T the model was trained at (the attack is on its logits, whatever T)
    cases: dict[str, CWCase]
    n_attacks: int
    n_succeeded: int
    samples: int
    mean_iterations: float
    median_const: float | None
    seconds: float
    attacks_per_second: float
    settings: dict[str, float | int | bool]
    reduced: str = ""  # why the settings differ from the reference code's, if they do
    n_pixels: int = 0
    inputs_digest: str = ""
    checkpoint: str = ""  # digest of the weights attacked (engine.checkpoints.model_digest)
    # CW-L2: rounds of a larger budget for the misses (engine/attacks/cw_l2.py), each with its budget,
    # the attacks it ran and those it reached
    escalations: list[dict[str, float | int]] = field(default_factory=list)
    unconverged: int | None = None  # CW-L2: attacks whose last binary step was cut with the loss still falling
    examples: list[Example] = field(default_factory=list)


@dataclass(frozen=True)
class CheckRow:
    name: str
    fired: bool
    value: float | None
    threshold: str
    evidence: str
    status: str = ""  # fired | clear | undecided ("" in runs judged before the statuses existed)
    kind: str = "masking"  # masking | attack failure
    gradient: str = ""  # the gradient a masking check is about
    n: int = 0
    low: float | None = None  # 95% interval of the share
    high: float | None = None
    n_needed: int | None = None  # an undecided check: the n that would decide it
    short: str = ""  # one short reason, for the compact table


@dataclass(frozen=True)
class VerdictMade(Payload):
    TYPE: ClassVar[EventType] = EventType.VERDICT
    model: str
    verdict: str  # masked | no sign of masking | inconclusive (mixed / not measured: runs judged before them)
    text: str
    checks: list[CheckRow]
    evidence: dict[str, Any] = field(default_factory=dict)
    remedy: str = ""  # masked: what the matching remedy reached, in words


@dataclass(frozen=True)
class AttackRow:
    """One (model, output) line of the summary's attack table."""

    success_rate: float
    n_attacks: int
    mean_features_changed: float | None
    rho_adv: float | None
    attacks_per_second: float
    rho_adv_is_lower_bound: bool = False
    method: str = "jsma"
    # C&W rows: the first of the preset's cases (average when run), distances over its successes
    case: str = ""
    mean_l0: float | None = None
    mean_l2: float | None = None
    mean_linf: float | None = None
    checkpoint: str = ""  # digest of the weights attacked (engine.checkpoints.model_digest)

    def to_dict(self) -> dict[str, Any]:
        """The row as summary.json holds it: a JSMA row without C&W's fields, a C&W row without JSMA's."""
        drop = ({"method", "case", "mean_l0", "mean_l2", "mean_linf"} if self.method == "jsma"
                else {"rho_adv_is_lower_bound"})
        return {k: v for k, v in asdict(self).items() if k not in drop}


@dataclass(frozen=True)
class GradientSupport:
    """Where a model's input gradient lives (engine.metrics.gradient_support)."""

    pixel_share: float  # share of input features with a non-zero gradient of the predicted logit, averaged
    pixel_share_min: float | None = None
    n_inputs: int = 0
    dead_units: dict[str, float] = field(default_factory=dict)  # ReLU layer -> share of units zero on every input
    units: dict[str, int] = field(default_factory=dict)
    dead_unit_share: float | None = None


@dataclass(frozen=True)
class GradientHonesty:
    """engine.masking.honesty's measurement on the verdict's inputs (without the per-input errors): does the
    backward describe the forward?"""

    n_inputs: int
    disagreeing_inputs: int  # at an attack's step
    disagreeing_at_every_step: int | None
    tolerance: float
    median_error_by_step: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class AttackRows:
    """What one attack request measured, as the summary's rows: the attack, C&W and verdict phases return
    these, and the session, the summary's one owner, folds them in (RunSummary.with_rows)."""

    attacks: dict[str, AttackRow] = field(default_factory=dict)
    gradient_amplitude: dict[str, dict[str, Any]] = field(default_factory=dict)  # measured again: replaces
    verdict: dict[str, VerdictMade] = field(default_factory=dict)
    gradient_honesty: dict[str, GradientHonesty] = field(default_factory=dict)

    def merged(self, later: AttackRows) -> AttackRows:
        return AttackRows(**_rows_merged(self, later))


def _rows_merged(earlier: Any, later: AttackRows) -> dict[str, dict[str, Any]]:
    """Each of AttackRows' tables of `earlier` (AttackRows or RunSummary) with `later`'s rows: a row measured
    again replaces its old one in place, new rows come after."""
    return {f.name: {**getattr(earlier, f.name), **getattr(later, f.name)} for f in fields(AttackRows)}


# summary.json's keys in their order in the file: the training summary's, then what the attack requests add
SUMMARY_KEYS = ("preset", "dataset", "data_note", "temperature", "deployed_temperature", "soft_label_temperature",
                "accuracy", "mean_abs_logit", "saturated_share", "saturated_share_by_model", "gradient_support",
                "logit_ratio_student_baseline", "attacks", "gradient_amplitude", "verdict", "gradient_honesty",
                "seconds")


@dataclass(frozen=True)
class RunSummary(Payload):
    """summary.json and the summary event: the same contract."""

    TYPE: ClassVar[EventType] = EventType.SUMMARY
    preset: str
    dataset: str
    data_note: str
    temperature: float  # the student's training T (the soft labels' T)
    accuracy: dict[str, float]
    mean_abs_logit: dict[str, float]
    saturated_share_by_model: dict[str, float]
    deployed_temperature: float = DEPLOYED
    saturated_share: float | None = None
    logit_ratio_student_baseline: float | None = None
    soft_label_temperature: float | None = None
    attacks: dict[str, AttackRow] = field(default_factory=dict)
    # model -> engine.metrics.gradient_amplitude's record without its values (attacks/<model>-gradients.json)
    gradient_amplitude: dict[str, dict[str, Any]] = field(default_factory=dict)
    gradient_support: dict[str, GradientSupport] = field(default_factory=dict)
    seconds: float = 0.0
    verdict: dict[str, VerdictMade] = field(default_factory=dict)
    gradient_honesty: dict[str, GradientHonesty] = field(default_factory=dict)

    def with_rows(self, rows: AttackRows) -> RunSummary:
        """This summary with an attack request's rows: a (model, output) measured again replaces its row."""
        return replace(self, **_rows_merged(self, rows))

    def to_dict(self) -> dict[str, Any]:
        """summary.json's content: what a run measured, without the empty tables of what it did not, its keys
        in the order the file has always had them."""
        out = asdict(self)
        out["attacks"] = {k: row.to_dict() for k, row in self.attacks.items()}
        for key in ("attacks", "gradient_amplitude", "verdict", "gradient_honesty"):
            if not out[key]:
                del out[key]
        if self.logit_ratio_student_baseline is None:
            del out["logit_ratio_student_baseline"]
        return {k: out[k] for k in SUMMARY_KEYS if k in out}


@dataclass(frozen=True)
class Stopped(Payload):
    TYPE: ClassVar[EventType] = EventType.STOPPED
    phase: str | None
    resume: str  # the command that continues the run


@dataclass(frozen=True)
class Finished(Payload):
    TYPE: ClassVar[EventType] = EventType.FINISHED
    seconds: float


@dataclass(frozen=True)
class Failed(Payload):
    TYPE: ClassVar[EventType] = EventType.FAILED
    message: str
    traceback: str | None = None


@dataclass(frozen=True)
class SweepProgress(Payload):
    TYPE: ClassVar[EventType] = EventType.SWEEP_PROGRESS
    stage: str  # started | progress | finished
    runs: dict[str, str] = field(default_factory=dict)  # run name -> pending | running | done | failed
    address: str = ""
    failures: dict[str, str] = field(default_factory=dict)  # run name -> why


# The events that end an engine's work on a run, and the run state each one leaves.
END_STATES: dict[EventType, str] = {EventType.FINISHED: "finished", EventType.FAILED: "failed",
                                    EventType.STOPPED: "stopped"}

PAYLOADS: dict[EventType, type[Payload]] = {
    cls.TYPE: cls for cls in (RunStarted, RunResumed, Probes, PhaseStarted, PhaseFinished, Batch, Epoch, Checkpoint,
                              SoftLabels, TemperatureChanged, Notice, Paused, Resumed, AttackStarted, AttackProgress,
                              AttackFinished, CWFinished, VerdictMade, RunSummary, Stopped, Finished, Failed,
                              SweepProgress)
}


# Fields an older schema named otherwise: event type -> {old name: new name} (see SCHEMA_VERSION).
RENAMED: dict[EventType, dict[str, str]] = {
    EventType.ATTACK_STARTED: {"temperature": "output_temperature"},
    EventType.ATTACK_FINISHED: {"temperature": "output_temperature"},
    EventType.CW_FINISHED: {"temperature": "model_temperature"},
}


def renamed(kind: EventType, data: Any) -> Any:
    """An event's fields as this schema names them (an older events.jsonl's names read back)."""
    names = RENAMED.get(kind)
    if not names or not isinstance(data, dict) or not any(old in data for old in names):
        return data
    out = dict(data)
    for old, new in names.items():
        if old in out and new not in out:
            out[new] = out.pop(old)
    if kind == EventType.ATTACK_STARTED and out.get("method", "jsma") != "jsma" and "temperature" in data:
        out["output_temperature"] = None  # version 2 put the model's training T here for C&W: no output T
    return out


def recorded_temperature(record: dict[str, Any], name: str) -> float | None:
    """`name` ("output_temperature" of a JSMA record, "model_temperature" of a C&W one) from an attacks/*.json
    record of any schema (version 2 wrote both as "temperature")."""
    t = record.get(name, record.get("temperature"))
    return None if t is None else float(t)


@cache
def _adapter(cls: type[Payload]) -> TypeAdapter:
    return TypeAdapter(cls)


class BadEvent(ValueError):
    """A record that is not an event this version can use."""


def payload_from(cls: type[Payload], data: Any) -> Any:
    """`data` (a dict from JSON) as `cls`, checked field by field; BadEvent if it does not fit."""
    try:
        return _adapter(cls).validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(record)"
        raise BadEvent(f"{cls.__name__}: {where}: {first['msg']}") from None


# -- the envelope -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    seq: int
    time: float
    data: Payload

    @property
    def type(self) -> EventType:
        return self.data.TYPE

    def to_json(self) -> str:
        return json.dumps({"type": self.type.value, "seq": self.seq, "time": self.time, "data": asdict(self.data)},
                          separators=(",", ":"), allow_nan=False)

    @staticmethod
    def from_dict(d: Any) -> Event:
        if not isinstance(d, dict):
            raise BadEvent("not a JSON object")
        try:
            kind = EventType(d.get("type"))
        except ValueError:
            raise BadEvent(f"unknown event type {str(d.get('type'))[:40]!r} (a newer version's?)") from None
        seq, t = d.get("seq"), d.get("time")
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(t, (int, float)):
            raise BadEvent("seq and time must be numbers")
        return Event(seq, float(t), payload_from(PAYLOADS[kind], renamed(kind, d.get("data", {}))))


def make_event(payload: Payload, seq: int, at: float | None = None) -> Event:
    return Event(seq, time.time() if at is None else at, payload)


@dataclass
class ReadReport:
    """What a reader of an event log could not use: counted, and said once."""

    skipped: int = 0
    first_problem: str = ""

    def skip(self, why: str) -> None:
        self.skipped += 1
        if not self.first_problem:
            self.first_problem = why

    def line(self, path: object) -> str:
        return (f"{path}: skipped {self.skipped} unreadable line{'s' if self.skipped != 1 else ''} "
                f"(first: {self.first_problem})")


def parse_lines(lines: Iterable[bytes], report: ReadReport | None = None) -> list[Event]:
    """Complete lines of an events.jsonl as events; anything unusable is skipped and counted."""
    report = report if report is not None else ReadReport()
    out: list[Event] = []
    for raw in lines:
        if not raw.strip():
            continue
        try:
            out.append(Event.from_dict(json.loads(raw.decode("utf-8"))))
        except UnicodeDecodeError:
            report.skip("not UTF-8 text")
        except json.JSONDecodeError:
            report.skip("not JSON")
        except (BadEvent, RecursionError) as exc:
            report.skip(str(exc)[:160])
    return out
