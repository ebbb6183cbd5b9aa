"""Is the robustness real? A run's verdict per model, through the one evidence path
(engine/masking/measure.py) with the run directory as its `Results`.

After the attack phase, on `attack.check_samples` held-out inputs (the first of the attacked ones, each
with one seeded random wrong target, the same targets as C&W's average case) each judged model gets:
the gradient facts (exact zeros, gradient honesty), randomized decisions, JSMA and CW-L2 from the attack
phase, the comparators of `attack.checks` (transfer from the baseline, or for the baseline from its
surrogate; SimBA; HopSkipJump; CW-L2 on estimated gradients), CW-L2 attacked again where beaten, and for
a masked model the remedy that matches it. The evidence, the checks and the verdict go into summary.json
("verdict") and a `verdict` event per model; `defdistill-engine verdict` judges the same files again
(engine/masking/from_run.py, beside the evidence path it reads through).
"""

from __future__ import annotations

import torch
from torch import nn

from engine.checkpoints import model_digest
from engine.deployment import training_temperature_or_none
from engine.masking.checks import judge
from engine.masking.from_run import measure_config, source_name, verdict_event
from engine.masking.honesty import TOLERANCE
from engine.masking.measure import Source, Subject, measure_evidence, source_examples
from engine.masking.run_results import Freshness, RunResults
from engine.numerics import exact_float32
from engine.record.events import AttackRows, GradientHonesty, VerdictMade
from engine.steps.context import RunContext


def check_inputs(exp: RunContext, chosen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs, their labels, one seeded random wrong target each): C&W's average case."""
    from engine.steps.cw_phase import cw_targets

    acfg = exp.preset.attack
    inputs = chosen[: acfg.check_samples or len(chosen)]
    labels = exp.data.y_test[inputs]
    _idx, targets, _avg = cw_targets(labels, ["average"], acfg.seed, held_out=inputs)
    return inputs, labels, targets


def _source(exp: RunContext, label: str, model: nn.Module) -> Source:
    return Source(label, model, RunResults(exp.rundir.path, source_name(label), writable=True,
                                           digest=model_digest(model.state_dict()), emit=exp.emit,
                                           pause_point=exp.pause_point))


def run_verdict_phase(exp: RunContext, chosen: torch.Tensor, models: list[str]) -> AttackRows:
    """The verdict of each model in `models` (emitted as it is made), and its gradient-honesty numbers,
    as the summary's rows."""
    acfg = exp.preset.attack
    verdicts: dict[str, VerdictMade] = {}
    honesty: dict[str, GradientHonesty] = {}
    if not acfg.checks:
        return AttackRows()
    with exact_float32():
        inputs, labels, targets = check_inputs(exp, chosen)
        x = exp.data.x_test[inputs]
        cfg = measure_config(acfg, exp.device, len(inputs))
        for name in models:
            trained = exp.trained(name)
            model = trained.network
            digest = model_digest(model.state_dict())
            freshness = Freshness(exp.rundir.path, name)
            results = RunResults(exp.rundir.path, name, writable=True, digest=digest, emit=exp.emit,
                                 pause_point=exp.pause_point, freshness=freshness)
            subject = Subject(name, model, x, targets, inputs.tolist(), results, labels=labels,
                              temperature=training_temperature_or_none(trained.temperature),
                              pool=exp.data.x_test)
            source = None
            if "transfer" in acfg.checks:
                found = exp.transfer_source(name)
                if found is not None:
                    source = _source(exp, *found)
                if name == "baseline":  # the students' source, here or in a sweep's later runs: made now
                    source_examples(_source(exp, "the baseline", model), x, targets, inputs.tolist(), labels, cfg)
            evidence = measure_evidence(subject, cfg, source)
            event = verdict_event(judge(evidence), evidence, freshness.stale, exp.rundir.path)
            verdicts[name] = event
            if evidence.honesty is not None:
                honesty[name] = GradientHonesty(
                    n_inputs=evidence.honesty[1], disagreeing_inputs=evidence.honesty[0],
                    disagreeing_at_every_step=evidence.honesty_every_step, tolerance=TOLERANCE,
                    median_error_by_step=evidence.honesty_errors)
            exp.emit(event)
    return AttackRows(verdict=verdicts, gradient_honesty=honesty)
