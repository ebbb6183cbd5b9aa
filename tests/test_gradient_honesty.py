"""Gradient honesty: the logits' autograd derivatives beside finite differences of the forward function.
It must fire on a backward that describes another function (a custom autograd backward, a detached part
of the input, another network's gradient) and stay clear on honest models, saturated and low-confidence
ones included; randomized decisions must tell input noise that moves decisions from noise that does not."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.attacks.hop_skip_jump import starting_points
from engine.masking.controls import ForeignBackward, Noisy, PartialGradient, Scaled, with_kwta
from engine.masking.honesty import TOLERANCE, gradient_honesty
from engine.masking.randomness import randomized_decisions


def _trained(trained_run, phase: str) -> nn.Module:
    from engine.checkpoints import unpack_state
    from engine.networks import build_network

    tensors, meta = trained_run.rundir.load_tensors(phase)
    net = build_network("mnist")
    unpack_state(tensors, meta, net, None)
    return net.eval()


class _SignOfGradient(torch.autograd.Function):
    """A custom backward, as a defence might write one: the forward is the identity, the backward hands on
    only the sign of the incoming gradient."""

    @staticmethod
    def forward(ctx, x):  # noqa: D102
        return x.clone()

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        return g.sign()


class CustomBackward(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(_SignOfGradient.apply(x))


class Float32Only(nn.Module):
    """A model that computes in float32 whatever it is given: measured in float32, not refused."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.float()(x.float())


@pytest.fixture(scope="module")
def nets(trained_run):
    base, teacher = _trained(trained_run, "baseline"), _trained(trained_run, "teacher")
    x = trained_run.data.x_test[:24]
    return base, teacher, x


def test_honest_models_agree_with_their_forward_saturated_and_unsure_ones_too(nets):
    base, _teacher, x = nets
    for model in (base, Scaled(base, 1000.0), Scaled(base, 0.05)):
        h = gradient_honesty(model, x)
        assert h["disagreeing_inputs"] == 0 and h["precision"] == "float64", h
        assert max(h["errors"]) < TOLERANCE / 2  # clear by a margin, not by luck
        assert min(h["median_error_by_step"].values()) < 1e-6  # a ReLU net: exact at a step that crosses no kink


def test_a_backward_that_lies_is_caught_whatever_the_lie(nets):
    base, teacher, x = nets
    lies = {"custom autograd backward": CustomBackward(base), "detached 90% of the input": PartialGradient(base, 0.1),
            "another network's backward": ForeignBackward(base, Scaled(teacher, 1 / 20), 1.0),
            "half its own, half another's": ForeignBackward(base, Scaled(teacher, 1 / 20), 0.5)}
    for name, model in lies.items():
        h = gradient_honesty(model.eval(), x)
        assert h["disagreeing_inputs"] == len(x), (name, h["disagreeing_inputs"])
        assert h["disagreeing_at_every_step"] == len(x), name  # wrong at every scale: another function's gradient
        with torch.no_grad():  # and the forward is the honest net's: only the backward lies
            assert torch.equal(model(x).argmax(1), base(x).argmax(1)), name


def test_a_discontinuous_activation_disagrees_only_at_an_attacks_scale(nets):
    base, _teacher, x = nets
    h = gradient_honesty(with_kwta(base, 0.2), x)
    assert h["disagreeing_inputs"] >= 0.8 * len(x), h  # the winners change within an attack's step
    assert h["disagreeing_at_every_step"] < h["disagreeing_inputs"], h  # exact where it is taken


def test_a_model_without_float64_is_measured_in_float32(nets):
    base, _teacher, x = nets
    h = gradient_honesty(Float32Only(base), x)
    assert h["precision"] == "float32" and h["disagreeing_inputs"] == 0, h
    assert next(base.parameters()).dtype == torch.float32  # the caller's model is left as it was


def test_randomness_counts_decisions_that_move_not_logits_that_differ(nets, trained_run):
    base, _teacher, x = nets
    targets = (trained_run.data.y_test[:24] + 3) % 10
    found = {}
    for name, model in (("honest", base), ("sigma 1e-6", Noisy(base, 1e-6)), ("sigma 0.1", Noisy(base, 0.1))):
        ends, reached = starting_points(model.eval(), x, targets, trained_run.data.x_test)
        found[name] = randomized_decisions(model, x, targets, ends, reached)
    assert found["honest"]["randomized_inputs"] == 0
    tiny = found["sigma 1e-6"]
    assert tiny["inputs_with_different_logits"] == len(x) and tiny["randomized_inputs"] == 0, tiny
    assert found["sigma 0.1"]["randomized_inputs"] >= 0.5 * len(x), found["sigma 0.1"]


@pytest.mark.slow
def test_the_eot_remedy_reaches_a_noisy_models_targets_by_its_majority_decision(nets, trained_run):
    """A randomized model's decision is the majority of its calls. CW-L2 on the mean of 8 calls stops at the
    mean's boundary, where one call lands either side (the remedy reached 0 of 40 targets on the digits bench's
    sigma-0.1 control when one call judged it); stepped outward until the majority holds, it reaches them, and
    fresh calls agree."""
    from engine.attacks.cw_l2 import CWL2Config
    from engine.masking.remedy import EOT_CW, RemedyConfig, run_remedy

    base, _teacher, _x = nets
    noisy = Noisy(base, 0.1).eval()
    x, y = trained_run.data.x_test[:40], trained_run.data.y_test[:40]
    with torch.no_grad():
        right = torch.stack([noisy(x).argmax(1) == y for _ in range(9)]).float().mean(0) > 0.5
    x, y = x[right][:10], y[right][:10]
    targets = (y + 1 + torch.arange(len(y)) % 9) % 10
    cw = CWL2Config(learning_rate=0.05, initial_const=0.1, binary_search_steps=5, max_iterations=200)
    r = run_remedy(noisy, EOT_CW, x, targets, cw, RemedyConfig())
    assert int(r.success.sum()) >= 0.7 * len(x), r.success
    with torch.no_grad():  # 32 fresh calls on the examples it reached: the target, most of the time
        fresh = torch.stack([noisy(r.x_adv[r.success]).argmax(1) == targets[r.success] for _ in range(32)])
    assert float(fresh.float().mean()) > 0.5, fresh.float().mean(0)
    assert torch.allclose(r.l2[r.success], (r.x_adv - x).flatten(1).norm(dim=1)[r.success])
