"""A model's masking evidence measured from scratch, for any classifier returning logits (the API a
library user calls, and the known-answer controls; runs assemble the same evidence from their own
attack files instead). Every attack runs on the same inputs and targets, so the checks can compare
them input by input at the same budget."""

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
from engine.masking.transfer import hits, per_input_l2
from engine.metrics import gradient_amplitude
from engine.numerics import exact_float32


@dataclass
class MeasureConfig:
    upsilon: float = 0.145
    cw: CWL2Config = field(default_factory=lambda: CWL2Config(learning_rate=0.05, binary_search_steps=6,
                                                              max_iterations=500, initial_const=0.01,
                                                              escalations=2))
    simba: SimBAConfig = field(default_factory=SimBAConfig)
    kappas: tuple[float, ...] = (0.0, 40.0)


@dataclass
class TransferExamples:
    """Examples made on a source model (an undistilled baseline) for the inputs and targets judged."""

    jsma_f: torch.Tensor  # (N, ...) JSMA-F's x_adv at the same Upsilon
    jsma_made: torch.Tensor  # (N,) bool
    cw: dict[str, tuple[torch.Tensor, torch.Tensor]]  # "CW-L2 kappa=40 from the source" -> (x_adv, made)


def every_target(x: torch.Tensor, labels: torch.Tensor, num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Each input once per wrong class, as the paper attacks it: JSMA's pairs, many per input, so its
    comparisons are decided on a few inputs (the L2 checks take one random target per input)."""
    offsets = torch.arange(1, num_classes).repeat(len(x))
    idx = torch.arange(len(x)).repeat_interleave(num_classes - 1)
    return x[idx], (labels[idx] + offsets) % num_classes


def make_transfer_examples(source: nn.Module, x: torch.Tensor, targets: torch.Tensor,
                           cfg: MeasureConfig | None = None, labels: torch.Tensor | None = None) -> TransferExamples:
    cfg = cfg or MeasureConfig()
    xj, tj = every_target(x, labels) if labels is not None else (x, targets)
    with exact_float32():
        f = jsma(attacked_output(source, "softmax", 1.0), xj, tj, JSMAConfig(upsilon=cfg.upsilon))
        cw = {}
        for k in cfg.kappas:
            made = cw_l2(source, x, targets, replace(cfg.cw, confidence=k))
            cw[f"CW-L2 kappa={k:g} from the baseline"] = (made.x_adv, made.success)
    return TransferExamples(f.x_adv, f.success, cw)


def measure_evidence(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, *, name: str = "model",
                     transfer: TransferExamples | None = None, cfg: MeasureConfig | None = None,
                     temperature: float | None = None, labels: torch.Tensor | None = None) -> Evidence:
    """Every check's numbers for `model` on (x, targets), one target per input (JSMA on every wrong
    class when `labels` are given, as the paper and a run attack). `transfer`: examples made on an
    undistilled model for the same inputs (and `labels`); `temperature`: the model's training T, which
    adds JSMA on softmax(z/T)."""
    cfg = cfg or MeasureConfig()
    xj, tj = every_target(x, labels) if labels is not None else (x, targets)
    with exact_float32():
        f = jsma(attacked_output(model, "softmax", 1.0), xj, tj, JSMAConfig(upsilon=cfg.upsilon))
        other = {"JSMA on the logits": jsma(attacked_output(model, "logits", 1.0), xj, tj,
                                            JSMAConfig(upsilon=cfg.upsilon)).success.tolist()}
        if temperature is not None and temperature != 1.0:
            other["JSMA on softmax(z/T)"] = jsma(attacked_output(model, "softmax_T", temperature), xj, tj,
                                                 JSMAConfig(upsilon=cfg.upsilon)).success.tolist()
        c = cw_l2(model, x, targets, cfg.cw)
        s = simba(model, x, targets, cfg.simba)
        amp = gradient_amplitude(model, x, 1.0)
    f_won = f.success.tolist()
    pairs = {k: list(zip(v, f_won, strict=True)) for k, v in other.items()}
    cw = per_input_l2(x, c.x_adv, c.success)
    l2_pairs = {"SimBA": list(zip(per_input_l2(x, s.x_adv, s.success), cw, strict=True))}
    transfer_share: dict[str, float] = {}
    if transfer is not None:
        replayed = hits(model, transfer.jsma_f, tj, transfer.jsma_made).tolist()
        pairs["JSMA-F transfer from the baseline"] = list(zip(replayed, f_won, strict=True))
        for label, (x_adv, made) in transfer.cw.items():
            ours = per_input_l2(x, x_adv, hits(model, x_adv, targets, made))
            l2_pairs[label] = list(zip(ours, cw, strict=True))
            transfer_share[label] = sum(v is not None for v in ours) / len(ours)
    q = float(s.queries[s.success].double().mean()) if s.success.any() else None
    return Evidence(
        model=name, whitebox_success=float(f.success.float().mean()), upsilon=cfg.upsilon,
        zero_gradients=(amp["zero_inputs"], amp["n_inputs"]),
        zero_logit_gradients=(amp["zero_logit_inputs"], amp["n_inputs"]),
        randomized=(amp["randomized_inputs"], amp["n_inputs"]),
        jsma_pairs=pairs, l2_pairs=l2_pairs, gradient_free=["SimBA"], cw_l2=cw,
        cw_unconverged=(int(c.capped.sum()), len(c.capped)) if c.capped is not None else None,
        cw_settings={k: getattr(cfg.cw, k) for k in ("binary_search_steps", "max_iterations", "initial_const",
                                                     "learning_rate", "escalations")},
        zero_gradient_share=amp["zero_share"], other_outputs={k: sum(v) / len(v) for k, v in other.items()},
        transfer=transfer_share, blackbox={"SimBA": float(s.success.float().mean())}, blackbox_queries={"SimBA": q},
        jsma_budget=jsma_curve(f.success, f.iterations, f.n_features,
                               tuple(u for u in (0.025, 0.05, 0.1, cfg.upsilon) if u <= cfg.upsilon)),
        cw_budget=l2_curve(c.success, c.l2))
