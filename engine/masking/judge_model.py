"""Judge any PyTorch model in one call: is its robustness real, or are its gradients masked?

    from engine import judge
    j = judge(model, x, y, surrogate=other_net, budget="quick")
    print(j)                     # the verdict, then one row per check (k/n and a 95% interval)
    j.verdict, j.checks, j.remedy, j.to_json()

The same evidence path as a run and `defdistill-engine judge` (engine/masking/measure.py) at the same
budgets (engine/masking/budgets.py): JSMA on the softmax and on the logits, CW-L2 with its escalations,
gradient facts (zeros, honesty), randomized decisions, SimBA, transfer from `surrogate` (a network
trained apart on the same data), and for a masked model the remedy that matches it. The model is
attacked in eval mode and handed back in the mode it came in, its weights untouched.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from engine.checkpoints import model_digest
from engine.errors import UserError
from engine.masking.budgets import budget_settings
from engine.masking.checks import judge as judge_evidence
from engine.masking.from_run import measure_config, verdict_event
from engine.masking.measure import MemoryResults, Source, Subject, measure_evidence
from engine.masking.verdict_table import verdict_table
from engine.metrics import eval_mode
from engine.model_factory import probability_rows
from engine.presets import AttackConfig
from engine.record.events import CheckRow


class JudgeError(UserError, ValueError):
    """What `judge` refuses to measure, with the fix: one line."""


@dataclass(frozen=True)
class Judgement:
    """A model's verdict with its evidence: what `verdict --json` gives per model, plus what was judged."""

    model: str
    verdict: str  # masked | no sign of masking | inconclusive
    text: str
    checks: list[CheckRow]
    evidence: dict[str, Any] = field(default_factory=dict)
    remedy: str = ""
    inputs: int = 0  # the inputs attacked: the first `n` of those the model classifies correctly
    budget: str = "standard"
    torch: str = torch.__version__

    def to_json(self) -> dict[str, Any]:
        """The verdict's fields as `defdistill-engine verdict --json` prints them for one model."""
        d = asdict(self)
        return {k: d[k] for k in ("model", "verdict", "text", "checks", "evidence", "remedy")}

    def table(self, long: bool = False) -> str:
        return verdict_table(self.model, self.to_json(), long=long)

    def __str__(self) -> str:
        return self.table()


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _refuse_bad_inputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                       randomized: bool) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or x.dim() != 4 or len(x) != len(y):
        raise JudgeError("judge needs x as an (N, C, H, W) float tensor and y as N integer labels; give them so")
    if not torch.is_floating_point(x) or float(x.min()) < 0 or float(x.max()) > 1:
        raise JudgeError(f"judge attacks images in [0, 1], but x spans [{float(x.min()):.3g}, {float(x.max()):.3g}]; "
                         "give the unnormalised images and put the normalisation inside the model")
    probe = x[: min(len(x), 16)].to(device)
    with torch.no_grad():
        first, second = model(probe), model(probe)
    if not isinstance(first, torch.Tensor) or first.dim() != 2:
        raise JudgeError("the model must return (N, classes) logits; return them as one tensor")
    if kind := probability_rows(first):
        raise JudgeError(f"the model returns {kind} (each row sums to 1); judge the network without its "
                         "softmax: attacks on the logits need the logits")
    if not randomized and not torch.equal(first, second):
        raise JudgeError("the model's outputs differ between two calls on the same inputs (a randomized defence); "
                         "pass randomized=True to judge it with the randomized-decision check and the EOT remedy")


def judge(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, surrogate: nn.Module | None = None,
          budget: str = "standard", device: torch.device | str | None = None, n: int | None = None,
          targets: torch.Tensor | None = None, randomized: bool = False, name: str = "model",
          seed: int = 0) -> Judgement:
    """The verdict on `model` (images in [0, 1] -> logits) on the first `n` (the budget's own, else) of
    the inputs x it classifies as y, each attacked towards one seeded random wrong target (or `targets`).
    `surrogate`: a network trained apart on the same data, whose examples are replayed on the model
    (transfer evidence; without it there is none). `device`: where to attack (default: the model's); a
    model elsewhere is copied there, never moved."""
    settings = budget_settings(budget, n)
    dev = torch.device(device) if device is not None else _device_of(model)
    subject = model if _device_of(model) == dev else copy.deepcopy(model).to(dev)
    source_net = None
    if surrogate is not None:
        source_net = surrogate if _device_of(surrogate) == dev else copy.deepcopy(surrogate).to(dev)
    before = model_digest(model.state_dict())
    with eval_mode(subject), eval_mode(source_net or nn.Identity()):
        x, y = x.detach().float().cpu(), y.detach().long().cpu()
        _refuse_bad_inputs(subject, x, y, dev, randomized)
        with torch.no_grad():
            right = torch.cat([subject(x[i:i + 256].to(dev)).argmax(1).cpu() for i in range(0, len(x), 256)]) == y
        keep = right.nonzero().flatten()[: settings["samples"]]
        if targets is None:
            gen = torch.Generator().manual_seed(seed + 7919)
            targets = (y + torch.randint(1, 10, (len(y),), generator=gen)) % 10
        targets = targets.detach().long().cpu()
        if len(keep) == 0:
            raise JudgeError("the model classifies none of the given inputs correctly; give inputs it gets right "
                             "(an attack on a misclassified input measures nothing)")
        cfg = measure_config(AttackConfig.model_validate({**settings, "seed": seed}), dev, len(keep))
        s = Subject(name, subject, x[keep], targets[keep], keep.tolist(), MemoryResults(), labels=y[keep], pool=x)
        src = Source("the surrogate", source_net, MemoryResults()) if source_net is not None else None
        evidence = measure_evidence(s, cfg, src)
    if model_digest(model.state_dict()) != before:  # the attacks read the weights; nothing may write them
        raise AssertionError("judge changed the model's weights")
    made = verdict_event(judge_evidence(evidence), evidence, [], None)
    return Judgement(model=name, verdict=made.verdict, text=made.text, checks=list(made.checks),
                     evidence=made.evidence, remedy=made.remedy, inputs=len(keep), budget=budget)
