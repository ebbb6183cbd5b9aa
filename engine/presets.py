"""Preset schema (TOML), loading by name or path, `--set key=value` overrides, one-line errors."""

from __future__ import annotations

import tomllib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.errors import PresetError, quoted

# The shipped presets are package data (engine/preset_files is the repository's presets/ folder, a link that
# a built wheel resolves into real files): found the same way from a checkout and from an installed wheel.
PRESET_FILES = "preset_files"
DEFAULT_PRESET = "digits"

Dataset = Literal["digits", "mnist", "mnist-t10k", "fashion-mnist", "cifar10"]
Phase = Literal["baseline", "teacher", "student"]
AttackedOutput = Literal["softmax", "logits", "softmax_T"]
AttackedModel = Literal["baseline", "teacher", "student"]
AttackMethod = Literal["jsma", "cw_l2", "cw_l0", "cw_linf"]
CWCase = Literal["average", "best", "worst"]
MaskingCheck = Literal["transfer", "blackbox", "budget", "decision", "estimated"]


class _Strict(BaseModel):
    # Unknown keys are errors: a typo in a preset must never silently fall back to a default.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=True)


class DataConfig(_Strict):
    dataset: Dataset = "digits"
    root: str = "data"
    download: bool = False
    # mnist-t10k only: how the 10,000 real MNIST test images are split into train / held-out.
    split: tuple[int, int] = (8000, 2000)
    # 0 = all; smaller values make quick runs and tests.
    train_limit: int = Field(0, ge=0)
    test_limit: int = Field(0, ge=0)


class NetworkConfig(_Strict):
    # Table I of the paper: "mnist" for 1x28x28 inputs, "cifar10" for 3x32x32.
    arch: Literal["mnist", "cifar10"] = "mnist"
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    # Any PyTorch model instead (engine/model_factory.py): "package.module:callable" returning an nn.Module
    # that maps images to 10 logits, its keyword arguments, and a weights file (a state dict) that makes
    # it the run's trained baseline: loaded, not trained (phases must then be ["baseline"]).
    factory: str = ""
    factory_args: dict[str, bool | int | float | str | list[int] | list[float]] = {}
    weights: str = ""


class TrainingConfig(_Strict):
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(128, ge=1)
    epochs: int = Field(50, ge=1)
    # Table II CIFAR10: lr and momentum multiplied by these every `decay_every` epochs.
    lr_decay: float = Field(1.0, gt=0, le=1)
    momentum_decay: float = Field(1.0, gt=0, le=1)
    decay_every: int = Field(10, ge=1)
    # lr warm-up: epoch e < warmup_epochs trains at lr x (e + 1) / (warmup_epochs + 1) (0 = none), so the
    # first large steps at high T do not kill first-layer units (a candidate of bench/training_stability.py)
    warmup_epochs: int = Field(0, ge=0, le=100)
    # d loss/d z = (p - y)/T, so at T = 100 plain SGD sits at chance; scaling the loss by T
    # (or T^2, as Hinton et al.) restores gradients of the T = 1 size.
    loss_scale: Literal["none", "T", "T2"] = "T"
    grad_clip: float = Field(5.0, ge=0)  # global grad-norm clip, 0 = off
    # The host reads the loss back (batch events, the non-finite check) at most this often;
    # 0 = after every batch, which makes the host wait for a GPU at each one.
    report_seconds: float = Field(0.25, ge=0, le=60)
    # The training set moved to the device once when it fits in half its free memory.
    data_on_device: bool = True
    # Adversarial training (Madry et al. 2018): each batch replaced by a PGD attack on it, L-inf radius
    # epsilon (0 = off), `adversarial_steps` steps of 2.5 epsilon / steps from a random start. A
    # known-answer control of the verdict: a model whose robustness is real.
    adversarial_epsilon: float = Field(0.0, ge=0, le=1)
    adversarial_steps: int = Field(7, ge=1, le=100)
    # torch.compile the forward pass and loss (CUDA graphs on a GPU). Off until a GPU run has
    # measured it faster with equal results (bench/gpu.py); a failure falls back to the plain step.
    compile: bool = False


class NumericsConfig(_Strict):
    # TF32 in training convolutions and matmuls (CUDA only). Attacks and gradient measurements
    # always run with TF32 off: they are float32 facts.
    tf32_training: bool = False
    # torch.use_deterministic_algorithms: bit-identical reruns on one device, at some speed cost.
    deterministic: bool = False


class DistillationConfig(_Strict):
    temperature: float = Field(100.0, gt=0)
    phases: list[Phase] = ["baseline", "teacher", "student"]

    @model_validator(mode="after")
    def _student_needs_teacher(self) -> DistillationConfig:
        if "student" in self.phases and "teacher" not in self.phases:
            raise ValueError("phases: 'student' needs 'teacher' (soft labels come from the teacher)")
        if len(set(self.phases)) != len(self.phases):
            raise ValueError("phases: each phase may appear once")
        return self


# Carlini & Wagner's attacks: each default is the reference code's (carlini/nn_robust_attacks).
class CWL2Settings(_Strict):
    confidence: float = Field(0.0, ge=0)  # kappa
    learning_rate: float = Field(1e-2, gt=0)
    binary_search_steps: int = Field(9, ge=1)
    max_iterations: int = Field(10_000, ge=1)
    abort_early: bool = True
    initial_const: float = Field(1e-3, gt=0)
    # rounds of a larger budget for a few misses (engine/attacks/cw_l2.py): an unbounded attack must reach
    # every target, so a miss is the attack's budget; 0 is the reference's single run
    escalations: int = Field(2, ge=0, le=5)
    samples: int = Field(0, ge=0)  # held-out inputs attacked; 0 = attack.samples


class CWL0Settings(_Strict):
    learning_rate: float = Field(1e-2, gt=0)
    max_iterations: int = Field(1000, ge=1)  # per constant
    initial_const: float = Field(1e-3, gt=0)
    largest_const: float = Field(2e6, gt=0)
    const_factor: float = Field(2.0, gt=1)
    samples: int = Field(0, ge=0)


class CWLinfSettings(_Strict):
    learning_rate: float = Field(5e-3, gt=0)
    max_iterations: int = Field(1000, ge=1)
    initial_const: float = Field(1e-5, gt=0)
    largest_const: float = Field(20.0, gt=0)
    const_factor: float = Field(2.0, gt=1)
    decrease_factor: float = Field(0.9, gt=0, lt=1)
    samples: int = Field(0, ge=0)


class SurrogateConfig(_Strict):
    # The transfer source of the baseline (a student's is the baseline): a network trained apart on the same
    # data. Empty: the run's teacher when it trains one, else a Table I net (network.arch) trained here at
    # T = 1 with the preset's training settings (checkpoint "surrogate"). A factory ("package.module:callable")
    # and its arguments name another architecture; `weights` (a state dict) loads it instead of training it.
    factory: str = ""
    factory_args: dict[str, bool | int | float | str | list[int] | list[float]] = {}
    weights: str = ""

    @property
    def named(self) -> bool:
        return bool(self.factory or self.weights)


class AttackConfig(_Strict):
    enabled: bool = True
    # Which attacks run: JSMA on each of `outputs`, and C&W's attacks (always on the logits).
    methods: list[AttackMethod] = ["jsma"]
    samples: int = Field(100, ge=1)
    outputs: list[AttackedOutput] = ["softmax", "logits", "softmax_T"]
    models: list[AttackedModel] = ["baseline", "student"]
    theta: float = Field(1.0)
    upsilon: float = Field(0.145, gt=0, le=1)
    # When no pair meets the sign conditions: "stop" (record it) or "unconstrained"
    # (cleverhans / torchattacks behaviour: take the best pair anyway).
    no_pair: Literal["stop", "unconstrained"] = "stop"
    # Attacks per batch; 0 = automatic (every attack of a (model, output) at once on a GPU, 1024 on a CPU).
    batch_size: int = Field(0, ge=0)
    seed: int = 0
    # C&W's target choices: average (one seeded random wrong target per input), best and worst
    # (over all 9 targets: best or worst needs 9 attacks per input).
    cw_cases: list[CWCase] = ["average"]
    # Said in the report and on the results screen: why these C&W settings differ from the reference's.
    cw_reduced: str = ""
    cw_l2: CWL2Settings = CWL2Settings()
    cw_l0: CWL0Settings = CWL0Settings()
    cw_linf: CWLinfSettings = CWLinfSettings()
    # Is the robustness real? Evidence measured beyond the attacks above (vanishing gradients, gradient
    # honesty, randomized decisions and the other outputs are always measured): transfer from the baseline,
    # or for the baseline from its surrogate (CW-L2 at kappa 0 and each of transfer_kappas, and JSMA-F), a
    # gradient-free attack (SimBA on the deployed log-scores), a decision-based one (HopSkipJump), CW-L2 on
    # gradients estimated from the forward function alone (estimated), and budget curves (JSMA-F up to
    # Upsilon = 100%). Then a verdict per model (docs/verdict.md).
    checks: list[MaskingCheck] = []
    check_samples: int = Field(0, ge=0)  # held-out inputs (average-case targets); 0 = attack.samples
    transfer_kappas: list[float] = [0.0, 10.0, 20.0, 30.0, 40.0]
    simba_queries: int = Field(2000, ge=1)
    simba_epsilon: float = Field(0.2, gt=0, le=1)
    hsja_steps: int = Field(10, ge=1, le=200)  # HopSkipJump iterations (each ~100 sqrt(step) decisions)
    # A model judged masked: run the remedy that matches what fired (CW-L2 on estimated gradients for a
    # backward that lies or vanishes, CW-L2 with EOT for randomized decisions; the logits, for a saturated
    # softmax, are CW-L2's own), at CW-L2's budget, and say what it reached.
    remedy: bool = True
    estimate_samples: int = Field(8, ge=1, le=1024)  # antithetic pairs of queries per estimated gradient
    estimate_sigma: float = Field(0.01, gt=0, le=0.5)  # their smoothing scale
    surrogate: SurrogateConfig = SurrogateConfig()

    @model_validator(mode="after")
    def _distinct(self) -> AttackConfig:
        for name in ("methods", "cw_cases", "outputs", "models", "checks"):
            if len(set(getattr(self, name))) != len(getattr(self, name)):
                raise ValueError(f"{name}: each entry may appear once")
        if not self.methods:
            raise ValueError("methods: name at least one attack, e.g. ['jsma', 'cw_l2']")
        if not self.cw_cases:
            raise ValueError("cw_cases: name at least one of average, best, worst")
        return self

    @field_validator("theta")
    @classmethod
    def _nonzero(cls, v: float) -> float:
        if v == 0:
            raise ValueError("theta must be non-zero (+1 increases features, -1 decreases them)")
        return v


class Preset(_Strict):
    name: str
    description: str = ""
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # CPU threads for torch (0: torch's default). Equal thread counts make CPU runs repeatable
    # bit for bit across processes (a Ray worker defaults to 1 thread).
    threads: int = Field(0, ge=0)
    data: DataConfig = DataConfig()
    network: NetworkConfig = NetworkConfig()
    training: TrainingConfig = TrainingConfig()
    distillation: DistillationConfig = DistillationConfig()
    attack: AttackConfig = AttackConfig()
    numerics: NumericsConfig = NumericsConfig()

    @model_validator(mode="after")
    def _weights_are_a_baseline(self) -> Preset:
        if self.network.weights and self.distillation.phases != ["baseline"]:
            raise ValueError("network.weights makes a trained model the run's baseline: set "
                             "distillation.phases = [\"baseline\"] (a teacher and a student are trained, not loaded)")
        return self

    @model_validator(mode="after")
    def _attacked_models_are_trained(self) -> Preset:
        # said before any training: a run would otherwise train, then stop at its attacks
        untrained = [m for m in self.attack.models if m not in self.distillation.phases]
        if self.attack.enabled and untrained:
            trained = [m for m in self.distillation.phases if m in self.attack.models] or list(self.distillation.phases)
            raise ValueError(f"attack.models names {', '.join(untrained)}, which distillation.phases "
                             f"{list(self.distillation.phases)} never trains: set attack.models = {trained} "
                             "(or add the phase, or attack.enabled = false)")
        return self

    def to_toml(self) -> str:
        return tomli_w.dumps(self.model_dump(mode="json"))


def available_presets() -> dict[str, Traversable]:
    """The presets shipped with the package, by name."""
    folder = resources.files("engine").joinpath(PRESET_FILES)
    found = [p for p in folder.iterdir() if p.name.endswith(".toml")] if folder.is_dir() else []
    return {p.name.removesuffix(".toml"): p for p in sorted(found, key=lambda p: p.name)}


def _resolve_path(name_or_path: str) -> Path | Traversable:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise PresetError(f"preset file {quoted(str(path))} not found; give an existing .toml path or one of: "
                              f"{', '.join(available_presets())}")
        return path
    presets = available_presets()
    if name_or_path not in presets:
        raise PresetError(f"unknown preset {quoted(name_or_path)}; choose one of: {', '.join(presets)} "
                          "(or give a path to a .toml file)")
    return presets[name_or_path]


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=value` -> (["a", "b"], value); the value is read as TOML, else kept as a string."""
    if "=" not in text:
        raise PresetError(f"--set {quoted(text)} is not key=value; e.g. --set distillation.temperature=20")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise PresetError(f"--set {quoted(text)} has an empty key; e.g. --set training.epochs=5")
    keys = key.split(".")
    if any(not k.strip() for k in keys):
        raise PresetError(f"--set {quoted(text)}: key {quoted(key)} has an empty part; e.g. --set training.epochs=5")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except Exception:  # not a TOML value (any parser failure): the text itself, as a string
        value = raw
    return keys, value


def _apply_override(tree: dict, keys: list[str], value: Any) -> None:
    node = tree
    for k in keys[:-1]:
        child = node.setdefault(k, {})
        if not isinstance(child, dict):
            raise PresetError(f"--set {quoted('.'.join(keys))}: {quoted(k)} is a value, not a section; "
                              "set a key inside it, e.g. --set training.epochs=5")
        node = child
    node[keys[-1]] = value


def _allowed(loc: tuple) -> str:
    """The bounds a field declares, in words ("a finite number > 0"), from the schema itself."""
    model: Any = Preset
    info = None
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return ""
        info = fields[part]
        model = info.annotation
    if info is None:
        return ""
    words = []
    for m in info.metadata:
        for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if getattr(m, attr, None) is not None:
                words.append(f"{sym} {getattr(m, attr)}")
    kind = {float: "a finite number", int: "a whole number", bool: "true or false", str: "a string"}.get(
        info.annotation, "")
    return " ".join([kind, " and ".join(words)]).strip()


def _describe(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    key = quoted(".".join(str(p) for p in first["loc"]) or "(top level)")[1:-1]
    kind = first["type"]
    if kind == "extra_forbidden":
        return (f"{source}: unknown key {quoted(key)}; remove it or check its spelling against "
                "`defdistill-engine check digits`")
    if not first["loc"] and kind == "value_error":  # a rule across sections: its message names the keys and the fix
        return f"{source}: {first['msg'].removeprefix('Value error, ')[:300]}"
    msg = first["msg"][:160]
    if kind == "literal_error":
        msg = msg.replace("Input should be", "must be one of:")
    got = first.get("input")
    got_s = "" if isinstance(got, dict) else f" (got {quoted(got)})"
    allowed = _allowed(tuple(first["loc"]))
    allowed_s = f"; allowed: {allowed}" if allowed and kind != "literal_error" else ""
    return f"{source}: {key}: {msg}{got_s}{allowed_s}; fix it in the preset or with --set {key}=VALUE"


def load_preset(name_or_path: str = DEFAULT_PRESET, overrides: list[str] | tuple[str, ...] = ()) -> Preset:
    """Load, override and validate a preset; every problem is a one-line PresetError."""
    path = _resolve_path(name_or_path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise PresetError(f"preset {path} is not UTF-8 text; save it as UTF-8 TOML") from None
    except OSError as exc:
        raise PresetError(f"cannot read preset {path} ({exc.strerror or exc}); check the path and its permissions") \
            from None
    tree = _parse_toml(text, f"preset {path}", "fix the syntax at that line")
    tree.setdefault("name", path.name.removesuffix(".toml"))
    for text in overrides:
        keys, value = parse_override(text)
        _apply_override(tree, keys, value)
    try:
        return Preset.model_validate(tree)
    except ValidationError as exc:
        raise PresetError(_describe(exc, f"preset {path.name}")) from None


def _parse_toml(text: str, source: str, fix: str) -> dict:
    """Any failure of the TOML parser (syntax, nesting too deep, ...) is the one-line preset error."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{source} is not valid TOML ({str(exc)[:120]}); {fix}") from None
    except Exception as exc:  # the parser's own limits: RecursionError, MemoryError's kin, ...
        raise PresetError(f"{source} cannot be parsed as TOML ({type(exc).__name__}); {fix}") from None


def preset_from_toml(text: str, source: str = "preset.toml") -> Preset:
    tree = _parse_toml(text, source, "restore it or start a new run")
    try:
        return Preset.model_validate(tree)
    except ValidationError as exc:
        raise PresetError(_describe(exc, source)) from None
