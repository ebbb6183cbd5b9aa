"""A model's masking evidence measured from scratch, for any classifier returning logits (the API a
library user calls; runs assemble the same evidence from their own attack results instead)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from engine.attacks.cw_l2 import CWL2Config, cw_l2
from engine.attacks.jsma import JSMAConfig, jsma
from engine.attacks.outputs import attacked_output
from engine.attacks.simba import SimBAConfig, simba
from engine.masking.budget import jsma_curve, l2_curve
from engine.masking.checks import Evidence
from engine.masking.transfer import replay
from engine.metrics import gradient_amplitude
from engine.numerics import exact_float32


@dataclass
class MeasureConfig:
    upsilon: float = 0.145
    cw: CWL2Config = field(default_factory=lambda: CWL2Config(learning_rate=0.05, binary_search_steps=6,
                                                              max_iterations=500, initial_const=0.01))
    simba: SimBAConfig = field(default_factory=SimBAConfig)
    kappas: tuple[float, ...] = (0.0, 20.0, 40.0)


def measure_evidence(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, *, name: str = "model",
                     source: nn.Module | None = None, cfg: MeasureConfig | None = None) -> Evidence:
    """Every check's numbers for `model` on (x, targets); `source` (an undistilled model) makes the
    transfer examples, CW-L2 at each kappa."""
    cfg = cfg or MeasureConfig()
    device = next(model.parameters()).device
    with exact_float32():
        f = jsma(attacked_output(model, "softmax", 1.0), x, targets, JSMAConfig(upsilon=1.0))
        curve = jsma_curve(f.success, f.iterations, f.n_features)
        whitebox = jsma_curve(f.success, f.iterations, f.n_features, (cfg.upsilon,))[f"{cfg.upsilon:g}"]
        z = jsma(attacked_output(model, "logits", 1.0), x, targets, JSMAConfig(upsilon=cfg.upsilon))
        c = cw_l2(model, x, targets, cfg.cw)
        s = simba(model, x, targets, cfg.simba)
        zeros = gradient_amplitude(model, x, 1.0, device)["zero_share"]
        transfer = {}
        if source is not None:
            for k in cfg.kappas:
                made = cw_l2(source, x, targets, replace(cfg.cw, confidence=k))
                transfer[f"CW-L2 kappa={k:g}"] = float(replay(model, made.x_adv, targets, made.success)["success_rate"])
    q = float(s.queries[s.success].double().mean()) if s.success.any() else None
    return Evidence(model=name, whitebox="JSMA-F", whitebox_success=whitebox, zero_gradient_share=zeros,
                    other_outputs={"JSMA on the logits": float(z.success.float().mean()),
                                   "CW-L2 on the logits": float(c.success.float().mean())},
                    transfer=transfer, blackbox={"SimBA": float(s.success.float().mean())},
                    blackbox_queries={"SimBA": q}, jsma_budget=curve, cw_budget=l2_curve(c.success, c.l2))
