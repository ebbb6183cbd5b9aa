"""Carlini & Wagner's attacks: the batched attacks reach what each attack run alone reaches, checked
against independent one-input-at-a-time implementations written here from the reference code's
algorithm (carlini/nn_robust_attacks l2_attack.py, l0_attack.py); a softmax output is refused."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from engine.attacks.cw_l0 import CWL0Config, cw_l0
from engine.attacks.cw_l2 import CWL2Config, cw_l2
from engine.attacks.cw_linf import CWLinfConfig, cw_linf
from engine.attacks.margin import margin
from engine.errors import AttackConfigError
from engine.steps.cw_phase import case_summary, cw_targets

torch.set_default_dtype(torch.float64)  # float64 here: batched and one-by-one arithmetic then agree to ~1e-15
try:
    _G = torch.Generator().manual_seed(0)
    TINY = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 10))
    with torch.no_grad():
        for p in TINY.parameters():
            p.copy_(torch.randn(p.shape, generator=_G) * 1.5)
    X = torch.rand(12, 1, 4, 4, generator=_G)
    with torch.no_grad():
        _PRED = TINY(X).argmax(1)
    TARGETS = (_PRED + 1 + torch.randint(0, 9, (12,), generator=_G)) % 10
finally:
    torch.set_default_dtype(torch.float32)
S = 0.999999


def _adam(w, g, m, v, t, lr):
    """TensorFlow's Adam for one tensor, written out."""
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + 0.001 * g * g
    lr_t = lr * math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
    return w - lr_t * m / (v.sqrt() + 1e-8), m, v


def _logits_and_grad(model, w, start, x, mask, t, c, kappa, fixed):
    """One input: (new image, logits, f, squared L2, loss, d loss / d w)."""
    w = w.clone().requires_grad_(True)
    new = (torch.tanh(w + start) + 1) / 2
    if mask is not None:
        new = new * mask + (1 - mask) * x
    z = model(new.unsqueeze(0))[0]
    other = max(float(z[j].detach()) for j in range(10) if j != t)
    f = torch.clamp(z.masked_fill(torch.arange(10) == t, -1e300).max() - z[t] + kappa, min=0)
    l2 = ((new - fixed) ** 2).sum()
    loss = l2 + c * f
    (g,) = torch.autograd.grad(loss, w)
    assert math.isclose(float(f.detach()), max(other - float(z[t].detach()) + kappa, 0.0), abs_tol=1e-12)
    return new.detach(), z.detach(), float(f.detach()), float(l2.detach()), float(loss.detach()), g


def reference_l2(model, x, t, steps, iters, lr, c0, kappa):
    """l2_attack.py for one input: binary search over c, Adam reset per step, early abort."""
    timg = torch.atanh((2 * x - 1) * S)
    fixed = (torch.tanh(timg) + 1) / 2
    lower, upper, c = 0.0, 1e10, c0
    best_l2, best_c, found = 1e10, math.nan, False
    for outer in range(steps):
        if steps >= 10 and outer == steps - 1:
            c = upper
        w, m, v = torch.zeros_like(x), torch.zeros_like(x), torch.zeros_like(x)
        step_best, step_ok, prev = 1e10, False, 1e6
        for i in range(iters):
            _new, z, _f, l2, loss, g = _logits_and_grad(model, w, timg, x, None, t, c, kappa, fixed)
            w, m, v = _adam(w, g, m, v, i + 1, lr)
            if i % max(1, iters // 10) == 0:
                if loss > prev * 0.9999:
                    break
                prev = loss
            zz = z.clone()
            zz[t] -= kappa
            if int(zz.argmax()) == t:
                if l2 < step_best:
                    step_best, step_ok = l2, True
                if l2 < best_l2:
                    best_l2, best_c, found = l2, c, True
        if step_ok:
            upper = min(upper, c)
            if upper < 1e9:
                c = (lower + upper) / 2
        else:
            lower = max(lower, c)
            c = (lower + upper) / 2 if upper < 1e9 else c * 10
    return found, best_c, best_l2


def reference_l0(model, x, t, iters, lr, c0, cmax, factor):
    """l0_attack.py for one input: L2 solves over the allowed pixels, freezing the least useful."""
    timg = torch.atanh((2 * x - 1) * S)
    fixed = (torch.tanh(timg) + 1) / 2
    valid = torch.ones(x[0].numel(), dtype=torch.bool)
    prev, c, last, last_c = x.clone(), c0, None, math.nan
    while True:
        start = torch.atanh((2 * prev - 1) * S)
        mask = valid.view(1, *x.shape[1:]).to(x.dtype)
        w, m, v, k = torch.zeros_like(x), torch.zeros_like(x), torch.zeros_like(x), 0
        solution = None
        while c < cmax and solution is None:
            for _ in range(iters):
                new, _z, f, _l2, _loss, g = _logits_and_grad(model, w, start, x, mask, t, c, 0.01, fixed)
                if f < 1e-4:
                    solution = (new, g)
                    break
                k += 1
                w, m, v = _adam(w, g, m, v, k, lr)
            else:
                c *= factor
        if solution is None:
            return last is not None, last_c, last
        new, g = solution
        changed = int(((x - new).abs() > 1e-4).any(0).sum())
        score = ((new - x).sum(0).abs() * g.abs().sum(0)).flatten()
        did = 0
        for e in torch.argsort(score, stable=True).tolist():
            if valid[e]:
                did += 1
                valid[e] = False
                if score[e] > 0.01 or did >= 0.3 * changed ** 0.5:
                    break
        last, last_c, prev = new, c, new
        if not valid.any():
            return True, last_c, last


@pytest.mark.parametrize("kappa", [0.0, 0.5])
def test_batched_cw_l2_reaches_the_outcome_and_c_of_each_attack_alone(kappa):
    cfg = CWL2Config(confidence=kappa, learning_rate=0.05, binary_search_steps=6, max_iterations=200,
                     initial_const=1e-2, batch_size=5)  # batches of 5: attacks leave and chunks follow
    batched = cw_l2(TINY, X, TARGETS, cfg)
    fixed = (torch.tanh(torch.atanh((2 * X - 1) * S)) + 1) / 2
    outcomes = []
    for i in range(len(X)):
        found, c, l2 = reference_l2(TINY, X[i], int(TARGETS[i]), 6, 200, 0.05, 1e-2, kappa)
        outcomes.append(found)
        assert bool(batched.success[i]) == found, i
        if found:
            assert float(batched.const[i]) == pytest.approx(c, rel=1e-12), i
            assert float(((batched.x_adv[i] - fixed[i]) ** 2).sum()) == pytest.approx(l2, rel=1e-9), i
    assert 0 < sum(outcomes)  # the comparison covers found examples
    with torch.no_grad():  # and every example reached its target with the required margin
        z = TINY(batched.x_adv[batched.success])
    assert bool((margin(z, TARGETS[batched.success], kappa) == 0).all())


def test_batched_cw_l0_reaches_the_outcome_and_pixels_of_each_attack_alone():
    # six attacks in batches of 4 and 2 (an uneven last batch): the pure-Python reference is slow
    cfg = CWL0Config(learning_rate=0.05, max_iterations=100, initial_const=1e-2, largest_const=1e4, batch_size=4)
    x, targets = X[:6], TARGETS[:6]
    batched = cw_l0(TINY, x, targets, cfg)
    for i in range(len(x)):
        found, c, adv = reference_l0(TINY, x[i], int(targets[i]), 100, 0.05, 1e-2, 1e4, 2.0)
        assert bool(batched.success[i]) == found, i
        if found:
            assert float(batched.const[i]) == pytest.approx(c, rel=1e-12), i
            assert torch.allclose(batched.x_adv[i], adv, atol=1e-9), i
    assert batched.success.any() and bool((batched.l0[batched.success] < 16).all())


def test_cw_linf_stays_in_the_box_and_shrinks_the_largest_change():
    res = cw_linf(TINY, X, TARGETS, CWLinfConfig(learning_rate=0.05, max_iterations=100, initial_const=1e-2))
    assert res.success.any()
    assert float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1
    # the tau schedule ends below 1: the found examples change no value by the whole box
    assert bool((res.linf[res.success] < 1.0).all())


def test_an_attack_refuses_a_model_whose_output_is_a_softmax():
    probs = nn.Sequential(TINY, nn.Softmax(dim=1))
    logp = nn.Sequential(TINY, nn.LogSoftmax(dim=1))
    for attack, cfg in ((cw_l2, CWL2Config()), (cw_l0, CWL0Config()), (cw_linf, CWLinfConfig())):
        with pytest.raises(AttackConfigError, match="attacks the logits") as err:
            attack(probs, X, TARGETS, cfg)
        assert "\n" not in str(err.value)
        with pytest.raises(AttackConfigError, match="log-probabilities"):
            attack(logp, X, TARGETS, cfg)


def test_cw_leaves_the_model_as_it_found_it():
    TINY.train()
    cw_l2(TINY, X[:2], TARGETS[:2], CWL2Config(max_iterations=5, binary_search_steps=1))
    assert TINY.training and all(p.requires_grad for p in TINY.parameters())


def test_cases_average_best_worst_follow_cw_definitions():
    labels = torch.tensor([0, 3])
    idx, targets, average = cw_targets(labels, ["average", "best", "worst"], seed=0)
    assert len(idx) == 18 and int(average.sum()) == 2 and bool((targets != labels[idx]).all())
    from engine.attacks.cw_result import CWResult

    l2 = torch.arange(18, dtype=torch.float32)
    success = torch.ones(18, dtype=torch.bool)
    success[12] = False  # input 1 misses one target: its worst case fails
    r = CWResult(x_adv=torch.zeros(18, 1, 2, 2), success=success, iterations=torch.ones(18, dtype=torch.long),
                 const=torch.ones(18), l0=torch.ones(18, dtype=torch.long), l2=l2, linf=l2 / 10, n_pixels=4)
    best = case_summary(r, idx, average, "best", "l2")
    worst = case_summary(r, idx, average, "worst", "l2")
    assert best.success_rate == 1.0 and best.mean_l2 == pytest.approx((0 + 9) / 2)
    assert worst.success_rate == 0.5 and worst.mean_l2 == pytest.approx(8.0)


def test_cw_l2_says_which_attacks_ran_out_of_iterations_with_the_loss_still_falling():
    """Pintor et al.'s incomplete optimisation, from abort_early's own test: cut at 3 iterations, the loss
    is still falling on most attacks (those whose loss stood still abort, as the reference's test says);
    given room, no attack's last step is cut; without abort_early there is no such test, so nothing is claimed.
    An optimiser that overshoots (a learning rate of 2 on this tiny net) ends steps with its loss risen."""
    cut = cw_l2(TINY, X, TARGETS, CWL2Config(max_iterations=3, binary_search_steps=2, learning_rate=0.01))
    assert cut.capped is not None and int(cut.capped.sum()) >= 9
    roomy = cw_l2(TINY, X, TARGETS, CWL2Config(max_iterations=2000, binary_search_steps=3, learning_rate=0.1,
                                               initial_const=1.0))
    assert roomy.capped is not None and not bool(roomy.capped.any())
    wild = cw_l2(TINY, X, TARGETS, CWL2Config(max_iterations=2000, binary_search_steps=3, learning_rate=2.0,
                                              initial_const=1.0))
    assert int(wild.rose.sum()) > int(roomy.rose.sum()) and bool(wild.unfinished.any())
    blind = cw_l2(TINY, X[:2], TARGETS[:2], CWL2Config(max_iterations=3, binary_search_steps=1, abort_early=False))
    assert not bool(blind.capped.any())


def test_each_escalation_round_reports_its_own_progress(monkeypatch):
    """A round of a larger budget repeats attacks the first bar already counted: it gets a bar of its own
    (the misses and unfinished attacks it repeats, its budget), so a long escalation is never silent."""
    import engine.attacks.cw_l2 as module

    # the rounds' floor budget (6 binary steps of 1,000 iterations) made small: what is tested is the wiring
    monkeypatch.setattr(module, "ESCALATION_STEPS", 1)
    monkeypatch.setattr(module, "ESCALATION_ITERATIONS", 5)
    first: list[int] = []
    rounds: list[tuple[int, int, int, list[int]]] = []

    def on_escalation(round_: int, n: int, budget: CWL2Config):
        seen: list[int] = []
        rounds.append((round_, n, budget.max_iterations, seen))
        return lambda success: seen.append(len(success))

    r = cw_l2(TINY, X, TARGETS, CWL2Config(max_iterations=3, binary_search_steps=1, learning_rate=0.01, escalations=2),
              on_finished=lambda success: first.append(len(success)), on_escalation=on_escalation)
    assert sum(first) == len(X)
    assert rounds and [k for k, *_ in rounds] == list(range(1, len(rounds) + 1))
    assert [(n, iters) for _k, n, iters, _seen in rounds] == [(e["attacks"], e["max_iterations"])
                                                              for e in r.escalations]
    assert all(sum(seen) == n for _k, n, _i, seen in rounds)  # every repeated attack ends on its round's bar
