"""Known-answer controls of the verdict: models whose answer is fixed by construction.

Not masked: the undistilled baseline; the baseline with its logits x 0.05 (a low-confidence model:
same predictions, softmax near uniform, every gradient still there); an adversarially trained Table I
net (training.adversarial_epsilon: robustness that is real). Masked: the distilled T = 100 student on its
deployed softmax; the baseline with its logits x 1000 (a saturated float32 softmax: vanishing gradients);
the baseline behind input quantisation (shattered gradients: round() has a zero derivative, BPDA is the
remedy); the baseline with Gaussian noise at inference (stochastic gradients: EOT is the remedy).

The wrappers are ordinary modules with a factory each, so a preset can name them like any model of a
researcher's own (network.factory = "engine.masking.controls:quantised", network.weights = a
baseline's weights with a "net." prefix, as `wrapped_weights` writes them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from engine.masking.checks import Verdict, judge
from engine.masking.measure import MeasureConfig, make_transfer_examples, measure_evidence
from engine.networks import build_network


class Scaled(nn.Module):
    """The network with its logits multiplied by `scale`: every prediction unchanged; x 1000 saturates its
    float32 softmax (exact 0 and 1), x 0.05 makes it unsure of everything."""

    def __init__(self, net: nn.Module, scale: float) -> None:
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * self.scale


class Quantised(nn.Module):
    """The network behind input quantisation to `levels` grey levels: round() has a zero derivative,
    so every input gradient is exactly 0 (shattered gradients, Athalye et al. 2018)."""

    def __init__(self, net: nn.Module, levels: int = 8) -> None:
        super().__init__()
        self.net, self.levels = net, levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.round(x * (self.levels - 1)) / (self.levels - 1))


class Noisy(nn.Module):
    """The network with Gaussian noise of `sigma` added to its input at every call, in eval mode too:
    each call answers differently (stochastic gradients)."""

    def __init__(self, net: nn.Module, sigma: float = 0.1) -> None:
        super().__init__()
        self.net, self.sigma = net, sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x + self.sigma * torch.randn_like(x))


# factories, for a preset's network.factory (keyword arguments from network.factory_args)
def saturated(scale: float = 1000.0, arch: str = "mnist") -> nn.Module:
    return Scaled(build_network(arch), scale)


def low_confidence(scale: float = 0.05, arch: str = "mnist") -> nn.Module:
    return Scaled(build_network(arch), scale)


def quantised(levels: int = 8, arch: str = "mnist") -> nn.Module:
    return Quantised(build_network(arch), levels)


def noisy(sigma: float = 0.1, arch: str = "mnist") -> nn.Module:
    return Noisy(build_network(arch), sigma)


def wrapped_weights(baseline_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Table I net's weights as a wrapper's (its `net.` submodule)."""
    return {f"net.{k}": v for k, v in baseline_state.items()}


@dataclass(frozen=True)
class Control:
    name: str
    masked: bool  # the answer, fixed by construction
    why: str
    build: Callable[[dict[str, nn.Module]], nn.Module]  # from the trained models: baseline, student, adversarial
    needs: str = "baseline"


CONTROLS: tuple[Control, ...] = (
    Control("baseline", False, "undistilled Table I net: gradients intact", lambda m: m["baseline"]),
    Control("low confidence", False, "baseline logits x 0.05: softmax near uniform, gradients intact",
            lambda m: Scaled(m["baseline"], 0.05)),
    Control("adversarially trained", False, "Table I net trained on PGD examples: robustness that is real",
            lambda m: m["adversarial"], needs="adversarial"),
    Control("distilled T=100", True, "student trained at T = 100, deployed at T = 1: saturated softmax",
            lambda m: m["student"], needs="student"),
    Control("saturated x1000", True, "baseline logits x 1000: float32 softmax exactly 0 / 1",
            lambda m: Scaled(m["baseline"], 1000.0)),
    Control("quantised input", True, "baseline behind 8-level input quantisation: zero derivative (BPDA)",
            lambda m: Quantised(m["baseline"], 8)),
    Control("noisy input", True, "baseline with Gaussian noise sigma 0.1 at every call: stochastic (EOT)",
            lambda m: Noisy(m["baseline"], 0.1)),
)


def confusion(rows: list[tuple[Control, str]]) -> dict[str, dict[str, int]]:
    """truth ("masked" / "not masked") -> verdict -> count."""
    out: dict[str, dict[str, int]] = {"masked": {}, "not masked": {}}
    for control, verdict in rows:
        truth = out["masked" if control.masked else "not masked"]
        truth[verdict] = truth.get(verdict, 0) + 1
    return out


def judge_controls(models: dict[str, nn.Module], x: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor,
                   cfg: MeasureConfig, student_temperature: float,
                   on_judged: Callable[[Control, Verdict], None] | None = None) -> list[tuple[Control, Verdict]]:
    """Every control whose models are given, attacked on (x, targets) (JSMA on every wrong class of
    `labels`) and judged; transfer examples made once on the baseline, as a run makes them."""
    transfer = make_transfer_examples(models["baseline"], x, targets, cfg, labels)
    out = []
    for control in CONTROLS:
        if control.needs not in models:
            continue
        model = control.build(models).eval()  # a new wrapper starts in training mode: dropout would be on
        evidence = measure_evidence(model, x, targets, name=control.name, cfg=cfg,
                                    transfer=None if control.name == "baseline" else transfer,
                                    temperature=student_temperature if control.needs == "student" else None,
                                    labels=labels)
        verdict = judge(evidence)
        out.append((control, verdict))
        if on_judged is not None:
            on_judged(control, verdict)
    return out


def judged_right(control: Control, verdict: str) -> bool:
    return verdict == ("masked" if control.masked else "no sign of masking")
