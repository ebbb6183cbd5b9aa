"""Errors a user can cause. Each becomes one line on stderr and exit code 2 at the edge."""

from __future__ import annotations

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A problem the user can fix; str() is the one line shown to them (problem, then fix)."""


class PresetError(UserError):
    pass


class DatasetError(UserError):
    pass


class RunDirError(UserError):
    pass


class CheckpointError(UserError):
    pass


class AttackConfigError(UserError):
    pass


def quoted(value: object, limit: int = 60) -> str:
    """repr(value) cut to a readable length: an error line must stay one line a person can read."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit - 20]}... ({len(text):,} chars)"
