"""What an engine process is asked to do (run, resume or attack a run directory), as one typed value.

The dashboard's ProcessSession starts an engine by handing a Job to the host's documented entry
point, `python -m engine.sessions.host JOB_JSON`, instead of rebuilding defdistill-engine's command line.
Torch-free: the dashboard builds jobs without importing the engine's science.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Literal

from engine.errors import UserError

if TYPE_CHECKING:  # imported where used: `defdistill-engine --version` reads no preset schema
    from engine.steps.request import AttackRequest

Command = Literal["run", "resume", "attack"]


@dataclass(frozen=True)
class Job:
    command: Command
    #: run: a preset name or .toml path; resume and attack: unused (the run directory holds its preset)
    preset: str = "digits"
    overrides: tuple[str, ...] = ()
    #: run: where results go (None: runs/<preset>-<UTC time>); resume and attack: the run directory
    run_dir: str | None = None
    data_root: str | None = None
    download: bool = False
    quiet: bool = True
    # attack only: None means the preset's choice
    models: tuple[str, ...] | None = None
    outputs: tuple[str, ...] | None = None
    methods: tuple[str, ...] | None = None
    samples: int | None = None
    checks: bool = False

    def __post_init__(self) -> None:
        if self.command not in ("run", "resume", "attack"):
            raise UserError(f"an engine job's command is run, resume or attack, not {self.command!r}")
        if self.command != "run" and not self.run_dir:
            raise UserError(f"an engine job `{self.command}` needs the run directory")
        if self.command == "attack":
            self.request  # noqa: B018 - validates the attack's fields, one line on a bad one

    @classmethod
    def attack(cls, run_dir: str, request: AttackRequest, **common: object) -> Job:
        """An engine process that attacks a finished run as `request` asks."""
        return cls("attack", run_dir=run_dir, models=request.models, outputs=request.outputs,
                   methods=request.methods, samples=request.samples, checks=request.checks, **common)  # type: ignore[arg-type]

    @property
    def request(self) -> AttackRequest:
        """An attack job's request (validated when the job is made: a bad one is refused before a process starts)."""
        from engine.steps.request import AttackRequest

        return AttackRequest(models=self.models, outputs=self.outputs, samples=self.samples, methods=self.methods,
                             checks=self.checks)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Job:
        try:
            raw = json.loads(text)
            known = {f.name for f in fields(cls)}
            if not isinstance(raw, dict) or set(raw) - known:
                raise ValueError(f"unknown keys {sorted(set(raw) - known) if isinstance(raw, dict) else raw!r}")
            for key in ("overrides", "models", "outputs", "methods"):
                if raw.get(key) is not None:
                    raw[key] = tuple(raw[key])
            return cls(**raw)
        except (ValueError, TypeError) as exc:
            raise UserError(f"the engine job is not valid JSON of a Job ({exc}); start engines with "
                            "`defdistill-engine run|resume|attack` instead") from None

    def command_line(self) -> list[str]:
        """The engine process that carries out this job (engine/sessions/host.py)."""
        return [sys.executable, "-m", "engine.sessions.host", self.to_json()]
