"""Known-answer controls of the verdict: models whose answer is fixed by construction.

Not masked: the undistilled baseline; the baseline with its logits x 0.05 (a low-confidence model:
same predictions, softmax near uniform, every gradient still there); an adversarially trained Table I
net (training.adversarial_epsilon: robustness that is real); the baseline with Gaussian noise of 1e-6 at
its input (every logit differs between calls, no decision does); the baseline attacked with a badly tuned
CW-L2 (learning rate 0.2, c from 100, one binary step of 20 iterations: an attack failure, not masking).
Masked: the distilled T = 100 student on its deployed softmax; the baseline with its logits x 1000 (a
saturated float32 softmax: vanishing gradients); the baseline behind input quantisation (shattered
gradients: round() has a zero derivative, BPDA is the remedy); the baseline with Gaussian noise of 0.1 at
inference (stochastic gradients: EOT is the remedy); and four whose gradient is non-zero, deterministic
and wrong: the baseline's forward with another network's backward (straight-through), the baseline with
its input gradient kept on 10% of the pixels (the rest of the input detached), the baseline with every
ReLU replaced by k-winners-take-all (discontinuous: Xiao et al. 2020, broken by Tramer et al. 2020), and
the baseline whose backward is half its own and half another network's.

The wrappers are ordinary modules with a factory each, so a preset can name them like any model of a
researcher's own (network.factory = "engine.masking.controls:quantised", network.weights = a
baseline's weights with a "net." prefix, as `wrapped_weights` writes them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from engine.masking.checks import Verdict, judge
from engine.masking.measure import MeasureConfig, MemoryResults, Source, Subject, measure_evidence
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


class ForeignBackward(nn.Module):
    """`net`'s outputs with a backward that is `mix` parts `other`'s gradient and 1 - mix parts its own:
    mix = 1 is a straight-through estimator of another network, 0.5 half a lie. The forward values are
    `net`'s (to float rounding), so accuracy and every decision are `net`'s."""

    def __init__(self, net: nn.Module, other: nn.Module, mix: float = 1.0) -> None:
        super().__init__()
        self.net, self.other, self.mix = net, other, mix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x)
        lie = self.mix * (self.other(x) - z)
        return z + lie - lie.detach()


class PartialGradient(nn.Module):
    """`net` with its input gradient kept on a fixed random `share` of the input's values: the rest of the
    input is detached from the graph (the forward is `net`'s, unchanged)."""

    def __init__(self, net: nn.Module, share: float = 0.1, shape: tuple[int, ...] = (1, 28, 28), seed: int = 0
                 ) -> None:
        super().__init__()
        self.net = net
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("kept", (torch.rand((1, *shape), generator=gen) < share).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept = self.kept.to(x.dtype)
        return self.net(x * kept + (x * (1 - kept)).detach())


class KWinnersTakeAll(nn.Module):
    """k-winners-take-all (Xiao et al. 2020): per input, a layer keeps its `ratio` largest activations and
    zeroes the rest. Piecewise linear, but the set of winners changes under perturbations far smaller than
    an attack's step: its gradient is exact where it is taken and useless one step away."""

    def __init__(self, ratio: float = 0.2) -> None:
        super().__init__()
        self.ratio = ratio

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        k = max(1, int(self.ratio * flat.shape[1]))
        threshold = flat.topk(k, dim=1).values[:, -1:]
        return (flat * (flat >= threshold)).view_as(x)


def with_kwta(net: nn.Module, ratio: float = 0.2) -> nn.Module:
    """A copy of `net` with every nn.ReLU replaced by k-WTA (the weights shared, not copied)."""
    import copy

    out = copy.copy(net)
    out._modules = {k: with_kwta(m, ratio) if not isinstance(m, nn.ReLU) else KWinnersTakeAll(ratio)
                    for k, m in net._modules.items()}
    return out


# factories, for a preset's network.factory (keyword arguments from network.factory_args)
def saturated(scale: float = 1000.0, arch: str = "mnist") -> nn.Module:
    return Scaled(build_network(arch), scale)


def low_confidence(scale: float = 0.05, arch: str = "mnist") -> nn.Module:
    return Scaled(build_network(arch), scale)


def quantised(levels: int = 8, arch: str = "mnist") -> nn.Module:
    return Quantised(build_network(arch), levels)


def noisy(sigma: float = 0.1, arch: str = "mnist") -> nn.Module:
    return Noisy(build_network(arch), sigma)


def partial_gradient(share: float = 0.1, arch: str = "mnist") -> nn.Module:
    net = build_network(arch)
    return PartialGradient(net, share, net.input_shape)


def kwta(ratio: float = 0.2, arch: str = "mnist") -> nn.Module:
    return with_kwta(build_network(arch), ratio)


def wrapped_weights(baseline_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Table I net's weights as a wrapper's (its `net.` submodule)."""
    return {f"net.{k}": v for k, v in baseline_state.items()}


# A CW-L2 tuned the way no one should (Adam's steps too large, c far too large, one binary step of 20
# iterations): on an honest model its failures are the attack's.
BAD_CW = {"learning_rate": 0.2, "initial_const": 100.0, "binary_search_steps": 1, "max_iterations": 20}


@dataclass(frozen=True)
class Control:
    name: str
    masked: bool  # the answer, fixed by construction
    why: str
    build: Callable[[dict[str, nn.Module]], nn.Module]  # from the trained models: baseline, teacher, student, ...
    needs: tuple[str, ...] = ("baseline",)
    cw: dict[str, Any] = field(default_factory=dict)  # CW-L2 settings of this control (an attack failure)
    # the verdicts that are right: "masked" for a masked control; for an attack failure "inconclusive" (the
    # attack failed) is as right as "no sign of masking" (it was escalated until it did not)
    expected: tuple[str, ...] = ()

    def right(self, verdict: str) -> bool:
        return verdict in (self.expected or (("masked",) if self.masked else ("no sign of masking",)))


def _foreign(models: dict[str, nn.Module], mix: float) -> nn.Module:
    # the teacher's logits over its T: another network's gradient at the baseline's scale
    return ForeignBackward(models["baseline"], Scaled(models["teacher"], 1 / models["teacher_T"]), mix)


CONTROLS: tuple[Control, ...] = (
    Control("baseline", False, "undistilled Table I net: gradients intact", lambda m: m["baseline"]),
    Control("low confidence", False, "baseline logits x 0.05: softmax near uniform, gradients intact",
            lambda m: Scaled(m["baseline"], 0.05)),
    Control("adversarially trained", False, "Table I net trained on PGD examples: robustness that is real",
            lambda m: m["adversarial"], needs=("adversarial",)),
    Control("inference noise 1e-6", False, "baseline with Gaussian input noise sigma 1e-6 at every call: every "
            "logit differs between calls, no decision does", lambda m: Noisy(m["baseline"], 1e-6)),
    Control("badly tuned CW-L2", False, "the baseline, attacked by CW-L2 at lr 0.2, c from 100, 1 binary step of "
            "20 iterations: an attack failure, not masking", lambda m: m["baseline"], cw=BAD_CW,
            expected=("no sign of masking", "inconclusive")),
    Control("distilled T=100", True, "student trained at T = 100, deployed at T = 1: saturated softmax",
            lambda m: m["student"], needs=("student",)),
    Control("saturated x1000", True, "baseline logits x 1000: float32 softmax exactly 0 / 1",
            lambda m: Scaled(m["baseline"], 1000.0)),
    Control("quantised input", True, "baseline behind 8-level input quantisation: zero derivative (BPDA)",
            lambda m: Quantised(m["baseline"], 8)),
    Control("noisy input", True, "baseline with Gaussian noise sigma 0.1 at every call: stochastic (EOT)",
            lambda m: Noisy(m["baseline"], 0.1)),
    Control("straight-through backward", True, "the baseline's forward with the teacher's backward (another "
            "network trained apart): a gradient of the wrong function", lambda m: _foreign(m, 1.0),
            needs=("baseline", "teacher")),
    Control("gradient on 10% of the input", True, "the baseline with 90% of its input detached from the graph: "
            "forward unchanged, backward partial", lambda m: PartialGradient(m["baseline"], 0.1)),
    Control("k-winners-take-all", True, "the baseline with every ReLU replaced by k-WTA (top 20% of each layer): "
            "discontinuous below an attack's step", lambda m: with_kwta(m["baseline"], 0.2)),
    Control("half-foreign backward", True, "the baseline's backward half its own, half the teacher's: non-zero, "
            "deterministic, wrong", lambda m: _foreign(m, 0.5), needs=("baseline", "teacher")),
)


def confusion(rows: list[tuple[Control, str]]) -> dict[str, dict[str, int]]:
    """truth ("masked" / "not masked") -> verdict -> count."""
    out: dict[str, dict[str, int]] = {"masked": {}, "not masked": {}}
    for control, verdict in rows:
        truth = out["masked" if control.masked else "not masked"]
        truth[verdict] = truth.get(verdict, 0) + 1
    return out


def judge_controls(models: dict[str, nn.Module], x: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor,
                   cfg: MeasureConfig, student_temperature: float, pool: torch.Tensor | None = None,
                   on_judged: Callable[[Control, Verdict], None] | None = None,
                   only: tuple[str, ...] = ()) -> list[tuple[Control, Verdict]]:
    """Every control whose models are given (or those named in `only`), attacked on (x, targets) (JSMA on
    every wrong class of `labels`) and judged. `models` holds the trained baseline, teacher (and its T as
    "teacher_T"), student and adversarially trained net; the transfer source of every control is the
    teacher, a network trained apart on the same data (as a run's surrogate is), its examples made once."""
    ids = list(range(len(x)))
    source = Source("the teacher", models["teacher"], MemoryResults()) if "teacher" in models else None
    out = []
    for control in CONTROLS:
        if any(n not in models for n in control.needs) or (only and control.name not in only):
            continue
        model = control.build(models).eval()  # a new wrapper starts in training mode: dropout would be on
        subject = Subject(control.name, model, x, targets, ids, MemoryResults(), labels=labels, pool=pool,
                          temperature=student_temperature if "student" in control.needs else None,
                          cw=replace(cfg.cw, **control.cw) if control.cw else None)
        verdict = judge(measure_evidence(subject, cfg, source))
        out.append((control, verdict))
        if on_judged is not None:
            on_judged(control, verdict)
    return out


def judged_right(control: Control, verdict: str) -> bool:
    return control.right(verdict)
