"""A sweep's result as types: sweep.json read into a SweepResult whose entries are keyed by float T.

engine/sweeps/collect.py writes sweep.json (its shape is the committed references'); every reader (the
report, its figures, the fidelity section, `verdict` on a sweep, the command line's summary) takes this
typed view instead of looking keys up by `f"{t:g}"` strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from engine.deployment import label
from engine.errors import RunDirError


@dataclass(frozen=True)
class SweepEntry:
    """One configuration of a sweep: the baseline, or the student at one T; with seeds the mean over them,
    their spread (population std) and each seed's own entry."""

    run_dir: str | list[str]
    accuracy: float
    mean_abs_logit: float
    saturated_share: float | None
    success_rate: dict[str, float]  # JSMA per output; cw_l2/cw_l0/cw_linf; transfer and simba from the verdict
    seconds: float
    mean_features_changed: dict[str, float | None] = field(default_factory=dict)
    n_attacks: dict[str, int] = field(default_factory=dict)
    ended: dict[str, dict[str, int]] = field(default_factory=dict)  # output -> why JSMA's attacks ended
    run_id: str | list[str | None] | None = None
    seed: int | None = None
    temperature: float | None = None
    gradient_amplitude: dict[str, Any] | None = None
    gradient_support: dict[str, Any] | None = None
    gradient_pixel_share: float | None = None
    dead_unit_share: float | None = None
    rho_adv: float | None = None
    rho_adv_is_lower_bound: bool = False
    inputs: dict[str, list[int] | None] = field(default_factory=dict)
    cw_distance: dict[str, dict[str, float | None]] = field(default_factory=dict)  # method -> l0/l2/linf
    cw: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> its cases, settings, speed
    verdict: dict[str, Any] | None = None  # the VerdictMade fields, serialised
    transfer: dict[str, float] = field(default_factory=dict)
    jsma_budget: dict[str, float] | None = None
    spread: dict[str, Any] = field(default_factory=dict)
    verdicts_by_seed: list[str] = field(default_factory=list)
    per_seed: list[SweepEntry] = field(default_factory=list)
    paired_with_baseline: dict[str, Any] | None = None

    @property
    def first_run_dir(self) -> str:
        """The run directory (the first seed's, with seeds)."""
        return self.run_dir if isinstance(self.run_dir, str) else self.run_dir[0]

    def spread_of(self, *keys: str) -> float:
        """The seeds' std of a number (spread_of("success_rate", "softmax")); 0.0 without seeds."""
        value: Any = self.spread
        for k in keys:
            value = value.get(k, {}) if isinstance(value, dict) else {}
        return float(value) if isinstance(value, (int, float)) else 0.0

    def distance(self, method: str, norm: str) -> float | None:
        """A C&W attack's mean distance over its successes (distance("cw_l2", "l2")); None if not run."""
        return self.cw_distance.get(method, {}).get(norm)


@dataclass(frozen=True)
class SweepResult:
    preset: str
    quick: bool
    overrides: list[str]
    dataset: str
    data_note: str
    temperatures: list[float]
    baseline: SweepEntry
    by_temperature: dict[float, SweepEntry]
    seconds: float
    seeds: list[int] | None = None
    failed: dict[str, str] = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)  # the baseline's resolved preset, meta.json, provenance
    ray: dict[str, Any] | None = None  # a sweep on Ray: its address and where each task ran
    parallel: int | None = None  # a sweep run N at a time on this machine
    seconds_this_invocation: float | None = None

    @property
    def top(self) -> float:
        """The sweep's highest temperature (the paper's headline: T = 100)."""
        return max(self.temperatures)

    def at(self, t: float) -> SweepEntry:
        # sweep.json keys a T by its label (6 significant digits): a plan's T of more digits reads back rounded
        return self.by_temperature[float(label(t))]

    def entries(self) -> list[SweepEntry]:
        """The students' entries in the order of `temperatures`."""
        return [self.at(t) for t in self.temperatures]

    @staticmethod
    def from_json(data: Any, where: object = "sweep.json",
                  fix: str = "run the same `defdistill-engine sweep` again to rebuild it") -> SweepResult:
        """sweep.json's content (or collect_sweep's) as a SweepResult; RunDirError naming `fix` if it does
        not fit."""
        try:
            return _adapter().validate_python(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            at = ".".join(str(p) for p in first["loc"]) or "(record)"
            raise RunDirError(f"{where} has the wrong shape ({at}: {first['msg']}); {fix}") from None


@cache
def _adapter() -> TypeAdapter:
    return TypeAdapter(SweepResult)
