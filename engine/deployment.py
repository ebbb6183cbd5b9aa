"""Which temperature a model is trained, deployed and attacked at, how a temperature is written as a key,
and the one check of a temperature typed by a person. Torch-free: the dashboard reads it through
engine.client.

The paper's rule (Papernot et al. 2016, section IV): the teacher and the distilled student are trained
with softmax(z/T) and deployed at T = 1; the baseline (and a run's transfer surrogate) is trained and
deployed at T = 1. A model is attacked on its deployed softmax (T = 1), on its logits, and, when it was
trained at another T, on softmax(z/T) at its training T.
"""

from __future__ import annotations

import math

from engine.errors import PresetError, quoted

DEPLOYED = 1.0  # every model is deployed with its softmax at T = 1
SURROGATE = "surrogate"  # the baseline's transfer source, trained (or loaded) only when the verdict needs one
UNDISTILLED = ("baseline", SURROGATE)  # trained at T = 1 whatever the run's T


def trained_temperature(model: str, distill_temperature: float) -> float:
    """The T `model` is trained at in a run distilling at `distill_temperature`."""
    return DEPLOYED if model in UNDISTILLED else float(distill_temperature)


def distilled(trained_at: float) -> bool:
    """Trained at another T than it is deployed at: its softmax(z/T) output is attacked too."""
    return trained_at != DEPLOYED


def training_temperature_or_none(trained_at: float) -> float | None:
    """The T of the softmax(z/T) output worth attacking, None for a model trained at the deployed T."""
    return trained_at if distilled(trained_at) else None


def label(t: float) -> str:
    """A temperature as a key and in words: 100 -> '100', 2.5 -> '2.5' (sweep.json's keys, file names)."""
    return f"{t:g}"


def check_temperature(value: object, what: str = "temperature") -> float:
    """A temperature a person typed (the dashboard, --temperatures, the command channel): a finite
    number > 0, else a PresetError naming the problem and the fix."""
    try:
        t = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise PresetError(f"{what} {quoted(value)} is not a number; give a finite number > 0, e.g. 20") from None
    if not math.isfinite(t) or t <= 0:
        raise PresetError(f"{what} {quoted(value)} is impossible; give a finite number > 0, e.g. 20")
    return t
