"""Is the robustness real? A control that masks gradients by construction is flagged, the same
network unwrapped is not; the checks' thresholds on hand-made evidence; the verdict command."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import cli
from engine.attacks.cw_l2 import CWL2Config
from engine.attacks.simba import SimBAConfig
from engine.checkpoints import unpack_state
from engine.masking.checks import Evidence, judge
from engine.masking.measure import MeasureConfig, measure_evidence
from engine.networks import build_network


class Saturating(nn.Module):
    """The same network with its logits x 1000: the argmax (and so every prediction) is unchanged,
    but its float32 softmax at T = 1 is exactly 0 or 1, as a tiny softmax temperature would make it.
    Robust-looking to JSMA-F by construction, and by construction not robust."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * 1000.0


def _baseline(trained_run) -> nn.Module:
    tensors, meta = trained_run.rundir.load_tensors("baseline")
    net = build_network("mnist")
    unpack_state(tensors, meta, net, None)
    return net.eval()


@pytest.mark.slow
def test_a_control_that_masks_gradients_by_construction_is_flagged_and_the_plain_network_is_not(trained_run):
    net = _baseline(trained_run)
    x, y = trained_run.data.x_test, trained_run.data.y_test
    with torch.no_grad():
        ok = net(x).argmax(1) == y
    x, y = x[ok][:12], y[ok][:12]
    targets = (y + 1 + torch.arange(12) % 9) % 10
    # small settings: the control's signs are large, they need no reference-strength attacks to show
    cfg = MeasureConfig(cw=CWL2Config(learning_rate=0.05, binary_search_steps=4, max_iterations=200,
                                      initial_const=0.1), simba=SimBAConfig(max_queries=1000), kappas=(0.0,))
    plain = judge(measure_evidence(net, x, targets, name="plain", cfg=cfg))
    masked = judge(measure_evidence(Saturating(net), x, targets, name="saturated", source=net, cfg=cfg))
    assert plain.verdict == "no sign of masking", plain.text
    assert masked.verdict == "masked", masked.text
    fired = {c.name for c in masked.checks if c.fired}
    # the tell-tale signs, each measured: zero gradients, and attacks that need no such gradient succeed
    assert {"vanishing gradients", "another output restores the attack", "transfer beats white-box",
            "gradient-free beats white-box"} <= fired, masked.checks
    assert all(c.evidence for c in masked.checks)


def test_thresholds_on_hand_made_evidence():
    robust = Evidence("m", "JSMA-F", 0.02, zero_gradient_share=0.0, other_outputs={"CW-L2 on the logits": 0.05},
                      transfer={"CW-L2 kappa=40": 0.06}, blackbox={"SimBA": 0.05},
                      jsma_budget={"0.025": 0.0, "0.145": 0.02, "1": 0.97})
    v = judge(robust)  # everything fails alike and the unbounded attack succeeds: nothing points at masking
    assert v.verdict == "no sign of masking", v.text
    weak = Evidence("m", "JSMA-F", 0.9, zero_gradient_share=0.5)
    assert judge(weak).verdict == "mixed"
    assert judge(Evidence("m", "JSMA-F", 0.9)).verdict == "not measured"


def test_verdict_command_on_a_finished_run_without_checks_says_what_it_measured(trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, run, ignore=shutil.ignore_patterns("engine.lock"))
    proc = cli("verdict", str(run))
    assert proc.returncode == 0, proc.stderr  # no attacks in this run: nothing to judge, said plainly
    bad = cli("verdict", str(tmp_path / "nothing"))
    assert bad.returncode == 2 and "neither sweep.json nor summary.json" in bad.stderr
