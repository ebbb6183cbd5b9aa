"""JSMA against an obviously-correct reference, batched vs single, saturation, and the attack phase."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from torch import nn

from conftest import cli
from engine.attacks.jsma import ENDED, JSMAConfig, jsma, max_iterations, target_gradients
from engine.attacks.outputs import attacked_output
from engine.attacks.saliency_map import best_pairs, best_pairs_bruteforce
from engine.checkpoints import unpack_state
from engine.networks import build_network


def reference_pair(a, b, domain, theta):
    """Algorithm 3, literally: every pair in order, keep the strictly better one."""
    best, best_pair = 0.0, None
    n = len(a)
    for p, q in itertools.combinations(range(n), 2):
        if not (domain[p] and domain[q]):
            continue
        alpha, beta = a[p] + a[q], b[p] + b[q]
        ok = (alpha > 0 and beta < 0) if theta > 0 else (alpha < 0 and beta > 0)
        if ok and abs(alpha) * abs(beta) > best:
            best, best_pair = abs(alpha) * abs(beta), (p, q)
    return best_pair


@pytest.mark.parametrize("theta", [1.0, -1.0])
@pytest.mark.parametrize("n", [6, 40, 150])
def test_pair_search_matches_reference_loop(theta, n):
    g = torch.Generator().manual_seed(n)
    rows = 25
    a = torch.randn(rows, n, generator=g, dtype=torch.float64).float()
    b = torch.randn(rows, n, generator=g, dtype=torch.float64).float()
    b[:3] = a[:3].abs() * theta  # rows where no pair can qualify
    domain = torch.rand(rows, n, generator=g) > 0.3
    domain[3, :] = False
    domain[3, :2] = True  # exactly one pair left
    for search in (best_pairs, best_pairs_bruteforce):
        kwargs = {"k0": 4} if search is best_pairs else {}  # small k0 forces the growing path
        p, q, found = search(a, b, domain, theta, **kwargs)
        for i in range(rows):
            ref = reference_pair(a[i].tolist(), b[i].tolist(), domain[i].tolist(), theta)
            if ref is None:
                assert not found[i], (search.__name__, i)
            else:
                assert found[i] and (int(p[i]), int(q[i])) == ref, (search.__name__, i, ref)


def test_pair_search_breaks_ties_like_the_reference():
    a = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    b = torch.tensor([[-1.0, -1.0, -1.0, -1.0]])
    p, q, found = best_pairs(a, b, torch.ones(1, 4, dtype=torch.bool), 1.0)
    assert found[0] and (int(p[0]), int(q[0])) == (0, 1) == reference_pair([1] * 4, [-1] * 4, [True] * 4, 1)


def _model_from(run, phase):
    tensors, meta = run.rundir.load_tensors(phase)
    net = build_network("mnist")
    unpack_state(tensors, meta, net, None)
    return net.eval()


def test_softmax_identity_equals_the_general_gradient(trained_run):
    # In float64 the general path (two backward passes) is accurate enough to check the identity
    # d(sum_{j != t} F_j)/dx = -dF_t/dx and that both paths pick the same pairs. (In float32 the
    # general path's sum of nine gradients cancels to rounding noise where F_t is tiny: the
    # identity is the more accurate of the two, not only the faster.)
    net = _model_from(trained_run, "baseline").double()
    x = trained_run.data.x_test[:12].double()
    t = (trained_run.data.y_test[:12] + 3) % 10
    for name in ("softmax", "softmax_T"):
        out = attacked_output(net, name, 20.0)
        a1, b1, _ = target_gradients(out, x, t, use_identity=True)
        a2, b2, _ = target_gradients(out, x, t, use_identity=False)
        assert torch.equal(a1, a2)
        assert float((b1 - b2).abs().max()) <= 1e-9 * float(a1.abs().max())
        dom = torch.ones_like(a1, dtype=torch.bool)
        p1, q1, f1 = best_pairs(a1, b1, dom, 1.0)
        p2, q2, f2 = best_pairs(a2, b2, dom, 1.0)
        assert torch.equal(p1, p2) and torch.equal(q1, q2) and torch.equal(f1, f2)


def _attack_set(run, k=4):
    y = run.data.y_test[:k].repeat_interleave(9)
    x = run.data.x_test[:k].repeat_interleave(9, 0)
    t = (y + torch.arange(1, 10).repeat(k)) % 10
    return x, t


@pytest.mark.parametrize("output", ["logits", "softmax"])
def test_batched_attack_equals_attacking_each_sample_alone(trained_run, output):
    net = _model_from(trained_run, "baseline")
    x, t = _attack_set(trained_run)
    out = attacked_output(net, output, 1.0)
    batched = jsma(out, x, t, JSMAConfig(batch_size=len(x)))
    for i in range(0, len(x), 5):
        alone = jsma(out, x[i:i + 1], t[i:i + 1], JSMAConfig(batch_size=1))
        assert int(alone.ended[0]) == int(batched.ended[i])
        assert int(alone.iterations[0]) == int(batched.iterations[i])
        assert torch.equal(alone.x_adv[0], batched.x_adv[i]), i
    assert batched.success.float().mean() > 0.5  # an undistilled model is easy to fool
    changed = batched.features_changed
    assert int(changed.max()) <= 2 * max_iterations(784, 0.145) == 112
    assert torch.all(batched.x_adv >= 0) and torch.all(batched.x_adv <= 1)
    # successes really are classified as the target
    ok = batched.success
    assert torch.equal(net(batched.x_adv[ok]).argmax(1), t[ok])


class Saturated(nn.Module):
    """A trained net with logits x1e4: its T = 1 softmax is exactly one-hot in float32,
    as a T = 100 distilled student's is."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x) * 1e4


def test_saturated_softmax_ends_with_no_qualifying_pair(trained_run):
    net = Saturated(_model_from(trained_run, "baseline"))
    x, t = _attack_set(trained_run, 2)
    result = jsma(attacked_output(net, "softmax", 1.0), x, t, JSMAConfig())
    assert (result.ended == ENDED.index("no_pair")).all()
    assert not torch.isnan(result.x_adv).any() and result.success.sum() == 0
    # the same model through softmax(z/T) at a large T is attackable again (Carlini's point)
    again = jsma(attacked_output(net, "softmax_T", 1e4), x, t, JSMAConfig())
    assert again.success.float().mean() > 0.3


def test_unconstrained_rule_keeps_going_where_stop_ends(trained_run):
    net = Saturated(_model_from(trained_run, "baseline"))
    x, t = _attack_set(trained_run, 1)
    result = jsma(attacked_output(net, "softmax", 1.0), x[:3], t[:3], JSMAConfig(no_pair="unconstrained"))
    assert result.unconstrained_steps > 0
    assert not (result.ended == ENDED.index("no_pair")).any()


def test_budget_is_floor_n_upsilon_over_2():
    assert max_iterations(784, 0.145) == 56
    assert max_iterations(3072, 0.145) == 222


def test_attack_command_on_a_finished_run(trained_run, tmp_path):
    import shutil

    run_dir = tmp_path / "attacked"
    shutil.copytree(trained_run.run_dir, run_dir)
    proc = cli("attack", str(run_dir), "--model", "student", "--output", "softmax_T", "--output", "softmax",
               "--samples", "3", "--quiet")
    assert proc.returncode == 0, proc.stderr
    rec = json.loads((run_dir / "attacks" / "student-softmax_T.json").read_text())
    for key in ("success_rate", "n_attacks", "mean_features_changed", "ended", "seconds", "attacks_per_second",
                "no_pair_rule", "output", "matrix", "rho_adv"):
        assert key in rec
    assert rec["n_attacks"] == 27 and rec["output"] == "softmax_T" and rec["output_temperature"] == 20.0
    assert sum(rec["ended"].values()) == 27
    assert sum(map(sum, rec["matrix"]["successes"])) == rec["n_succeeded"]
    ex = np.load(run_dir / "attacks" / "student-softmax_T.npz")
    assert ex["x_adv"].shape == (27, 1, 28, 28)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["attacks"]["student-softmax_T"]["success_rate"] == rec["success_rate"]
    assert "student" in summary["gradient_amplitude"]
    assert summary["accuracy"] == trained_run.rundir.read_summary().accuracy


def test_colour_inputs_count_features_and_pixels_apart():
    """3x32x32 (Table I CIFAR10 net): a feature is one input value; pixels changed counts any channel."""
    torch.manual_seed(0)
    net = build_network("cifar10").eval()
    x = torch.rand(4, 3, 32, 32) * 0.5
    t = torch.tensor([1, 2, 3, 4])
    result = jsma(attacked_output(net, "logits", 1.0), x, t, JSMAConfig(upsilon=0.01))
    assert result.n_features == 3 * 32 * 32 and result.max_iterations == 15
    assert (result.features_changed <= 30).all()
    assert (result.pixels_changed <= result.features_changed).all()
    assert (result.pixels_changed * 3 >= result.features_changed).all()
    changed = (result.x_adv != x).flatten(1).sum(1)
    assert torch.equal(changed, result.features_changed)


def test_decreasing_variant_only_lowers_features(trained_run):
    net = _model_from(trained_run, "baseline")
    x, t = _attack_set(trained_run, 2)
    result = jsma(attacked_output(net, "logits", 1.0), x, t, JSMAConfig(theta=-1.0))
    assert torch.all(result.x_adv <= x)
    assert result.features_changed.sum() > 0
    # only features that were above 0 could be lowered (the domain)
    assert torch.all((result.x_adv != x) <= (x > 0))
