"""Fast unit tests of pure pieces: the loss at T, soft labels, JSMA's manners, the dashboard state."""

from __future__ import annotations

import torch

from engine.attacks.jsma import JSMAConfig, jsma
from engine.attacks.outputs import attacked_output
from engine.distillation import soft_labels
from engine.metrics import gradient_support
from engine.networks import build_network
from engine.record.events import Event, TemperatureChanged
from engine.temperature import loss_at_temperature, loss_scale_factor
from tui.state import MAX_LOG_LINES, DashboardState


def test_gradient_of_the_loss_at_T_is_p_minus_y_over_T_times_the_scale():
    torch.manual_seed(0)
    z = torch.randn(5, 10, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 3, 9, 2, 2])
    for t, scale in ((1.0, "none"), (20.0, "T"), (100.0, "T2")):
        (g,) = torch.autograd.grad(loss_at_temperature(z, y, t, scale), z)
        p = torch.softmax(z.detach() / t, dim=1)
        expected = (p - torch.nn.functional.one_hot(y, 10)) / t * loss_scale_factor(t, scale) / len(y)
        assert torch.allclose(g, expected, atol=1e-12), (t, scale)


def test_one_hot_soft_labels_give_the_hard_label_loss():
    z = torch.randn(7, 10, dtype=torch.float64)
    y = torch.randint(0, 10, (7,))
    soft = torch.nn.functional.one_hot(y, 10).double()
    for t in (1.0, 5.0, 100.0):
        assert torch.allclose(loss_at_temperature(z, soft, t), loss_at_temperature(z, y, t), atol=1e-12)


def test_soft_labels_are_the_teachers_softmax_at_T_computed_independently():
    torch.manual_seed(1)
    teacher = build_network("mnist", 0.5).eval()
    x = torch.rand(6, 1, 28, 28)
    t = 20.0
    with torch.no_grad():
        z = teacher(x).double()
    # by hand: exp(z_i / T) / sum_j exp(z_j / T), shifted by the row max for stability
    e = torch.exp((z - z.max(1, keepdim=True).values) / t)
    expected = (e / e.sum(1, keepdim=True)).float()
    got = soft_labels(teacher, x, t, torch.device("cpu"))
    assert torch.allclose(got, expected, atol=1e-6) and torch.allclose(got.sum(1), torch.ones(6), atol=1e-6)


def test_jsma_leaves_the_callers_model_as_it_found_it():
    model = build_network("mnist", 0.5).train()
    next(model.classifier.parameters()).requires_grad_(False)  # a caller's own choice, to be kept
    flags = [p.requires_grad for p in model.parameters()]
    jsma(attacked_output(model, "logits", 1.0), torch.rand(2, 1, 28, 28), torch.tensor([1, 2]),
         JSMAConfig(theta=1.0, upsilon=0.02))
    assert model.training and [p.requires_grad for p in model.parameters()] == flags


def test_the_event_log_keeps_showing_new_lines_after_its_cap():
    state = DashboardState()
    shown: list[str] = []
    for i in range(MAX_LOG_LINES + 50):
        seen = state.log_total
        state.apply(Event(i + 1, 1_700_000_000.0 + i, TemperatureChanged("teacher", float(i + 1), float(i + 2),
                                                                         "next batch")))
        shown += state.new_lines(seen)  # what the app writes to its Log widget
    assert len(shown) == MAX_LOG_LINES + 50 and shown[-1].endswith(f"-> {MAX_LOG_LINES + 51} (next batch)")
    assert len(state.log) == MAX_LOG_LINES and state.distill_temperature == MAX_LOG_LINES + 51


def test_replayed_events_are_folded_once():
    state = DashboardState()
    e = Event(1, 0.0, TemperatureChanged("teacher", 1.0, 5.0, "next batch"))
    state.apply(e)
    state.apply(e)
    assert state.log_total == 1 and state.temperature_marks == [("teacher", 0.0, 5.0)]


def test_unconstrained_pair_search_survives_gradients_that_underflow():
    from engine.attacks.saliency_map import best_pairs

    torch.manual_seed(2)
    a, b = torch.randn(4, 50), torch.randn(4, 50)
    domain = torch.ones(4, 50, dtype=torch.bool)
    reference = best_pairs(a, b, domain, 1.0, constrained=False)
    # a saturated softmax: the same directions at 1e-25, whose float32 products underflow to 0
    tiny = best_pairs(a * 1e-25, b * 1e-25, domain, 1.0, constrained=False)
    assert torch.equal(tiny[0], reference[0]) and torch.equal(tiny[1], reference[1])
    assert not bool(((tiny[0] == 0) & (tiny[1] == 1)).all())  # not the lowest-index pair by underflow


def test_system_panel_says_an_ended_engine_has_ended():
    import subprocess
    import sys

    from engine.sessions.telemetry import Telemetry

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    telemetry = Telemetry(pid=child.pid)
    from conftest import wait_until

    wait_until(lambda: telemetry.cpu_sample().fields.get("state") == "the engine process has ended", 30,
               "the panel to notice the engine's end")  # a zombie (not reaped yet) counts as ended
    child.wait()
    assert telemetry.cpu_sample().fields == {"state": "the engine process has ended"}


def test_gradient_support_counts_the_pixels_a_gradient_reaches_and_the_dead_units():
    """A known answer: the first layer reads only the left half of the image, and one hidden unit of two
    can never fire (its bias is -1e6), so the gradient is non-zero on exactly half the pixels and half
    the units are dead."""
    lin = torch.nn.Linear(16, 2)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[:, :8] = 1.0  # pixels 8..15 reach nothing
        lin.bias.copy_(torch.tensor([0.0, -1e6]))
    model = torch.nn.Sequential(torch.nn.Flatten(), lin, torch.nn.ReLU(), torch.nn.Linear(2, 3)).train()
    x = torch.rand(5, 1, 4, 4) + 0.1  # positive inputs: the live unit is on for every one
    s = gradient_support(model, x, torch.device("cpu"))
    assert s["pixel_share"] == 0.5 and s["pixel_share_min"] == 0.5 and s["n_inputs"] == 5
    assert s["dead_units"] == {"2": 0.5} and s["units"] == {"2": 2} and s["dead_unit_share"] == 0.5
    assert model.training  # left in the mode it was found in
