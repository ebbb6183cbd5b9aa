"""What a person asks of a run's attacks, as one frozen, validated value: from the dashboard's attack
screen or `defdistill-engine attack`, through the session, the command channel and an engine job, to
the attack phase. Torch-free: the dashboard builds requests without importing the engine's science.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, get_args

from engine.errors import AttackConfigError, quoted
from engine.presets import AttackedModel, AttackedOutput, AttackMethod

MODELS, OUTPUTS, METHODS = get_args(AttackedModel), get_args(AttackedOutput), get_args(AttackMethod)


@dataclass(frozen=True)
class AttackRequest:
    """None means the preset's choice; `methods=()` runs no attack (the checks alone); `checks` measures
    the preset's masking checks and a verdict per attacked model afterwards."""

    models: tuple[str, ...] | None = None
    outputs: tuple[str, ...] | None = None
    samples: int | None = None
    methods: tuple[str, ...] | None = None
    checks: bool = False

    def __post_init__(self) -> None:
        for name, allowed in (("models", MODELS), ("outputs", OUTPUTS), ("methods", METHODS)):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise AttackConfigError(f"attack {name} {quoted(value)} is not a list; e.g. {name}={list(allowed[:2])}")
            items = tuple(value)
            unknown = [v for v in items if v not in allowed]
            if unknown:
                raise AttackConfigError(f"attack {name}: unknown {', '.join(map(quoted, unknown))}; choose from "
                                        f"{', '.join(allowed)}")
            object.__setattr__(self, name, items)  # a list from JSON or a screen is held as a tuple
        if self.samples is not None and (isinstance(self.samples, bool) or not isinstance(self.samples, int)
                                         or self.samples < 1):
            raise AttackConfigError(f"attack samples {quoted(self.samples)} must be a whole number >= 1 (or none: "
                                    "the preset's attack.samples)")
        if not isinstance(self.checks, bool):
            raise AttackConfigError(f"attack checks {quoted(self.checks)} must be true or false")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the command channel, an engine job)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AttackRequest:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise AttackConfigError(f"an attack request has unknown keys {unknown}; known: {sorted(known)}")
        return cls(**raw)
