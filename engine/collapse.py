"""Is a model no better than chance? A network at chance fools every attack statistic: JSMA-F
then "fails" on it (0% success, the paper's headline number) because the network answers one
class for everything, not because it resists. The literal Table II setting (constant lr 0.1,
momentum 0.9) did this to an MNIST teacher at T = 100 at epoch 49 of 50: its units died after one
large clipped step and its held-out accuracy fell from ~95% to 11.3%, the most frequent class.

`chance_level` is the held-out accuracy of always answering the most frequent class; a model
within `MARGIN` of it is at chance. `CollapseWatch` says once per phase when an epoch falls to
chance after the phase had learned (the event log shows it as it happens), and a phase that ends
so is refused. A model that never learned is not refused (a short test run; the report warns)."""

from __future__ import annotations

import torch

from engine.errors import UserError

MARGIN = 0.05  # 5 points above chance
LEARNED = 0.5  # a phase "had learned" once an epoch reached 50% held-out accuracy

FIX = ("lower the lr or let it decay, in a fresh run directory, e.g. --set training.lr_decay=0.5 "
       "--set training.decay_every=10 (clipped steps of constant size keep bouncing at high T)")


class ModelAtChance(UserError):
    pass


def chance_level(labels: torch.Tensor) -> float:
    """Held-out accuracy of answering the most frequent class."""
    return float(torch.bincount(labels.long()).max()) / max(len(labels), 1)


def at_chance(accuracy: float, chance: float) -> bool:
    return accuracy <= chance + MARGIN


class CollapseWatch:
    """Follows one phase's held-out accuracy epoch by epoch."""

    def __init__(self, phase: str, chance: float) -> None:
        self.phase, self.chance = phase, chance
        self.best, self.best_epoch, self.said = 0.0, -1, False

    def observe(self, epoch: int, accuracy: float) -> str | None:
        """A line for the event log the first time the phase falls to chance after it had learned."""
        if accuracy > self.best:
            self.best, self.best_epoch = accuracy, epoch
        if self.said or self.best < LEARNED or not at_chance(accuracy, self.chance):
            return None
        self.said = True
        return (f"{self.phase} collapsed at epoch {epoch + 1}: held-out accuracy {100 * accuracy:.1f}% (chance "
                f"{100 * self.chance:.1f}%) after {100 * self.best:.1f}% at epoch {self.best_epoch + 1}")


def collapse_logged(notices: list[str], phase: str) -> bool:
    """Whether an earlier session of this run logged the phase's collapse (a resumed run stops where it did)."""
    return any(text.startswith(f"{phase} collapsed at epoch ") for text in notices)


def refuse_collapsed(phase: str, collapsed: bool, accuracy: float, chance: float) -> None:
    """Stop before a model that learned and then fell to chance is distilled from or attacked. A
    model that never learned (too few epochs) is not refused: the report says its accuracy."""
    if collapsed and at_chance(accuracy, chance):
        use = "its soft labels would teach nothing" if phase == "teacher" else "its attack numbers would mean nothing"
        raise ModelAtChance(f"the {phase} collapsed to chance: held-out accuracy {100 * accuracy:.1f}% (answering the "
                            f"most frequent class scores {100 * chance:.1f}%), so {use} and the run stops here; {FIX}")
