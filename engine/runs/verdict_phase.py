"""Is the robustness real? A run's verdict per model, through the one evidence path
(engine/masking/measure.py) with the run directory as its `Results`.

After the attack phase, on `attack.check_samples` held-out inputs (the first of the attacked ones, each
with one seeded random wrong target, the same targets as C&W's average case) each judged model gets:
the gradient facts (exact zeros, gradient honesty), randomized decisions, JSMA and CW-L2 from the attack
phase, the comparators of `attack.checks` (transfer from the baseline, or for the baseline from its
surrogate; SimBA; HopSkipJump; CW-L2 on estimated gradients), CW-L2 attacked again where beaten, and for
a masked model the remedy that matches it. The evidence, the checks and the verdict go into summary.json
("verdict") and a `verdict` event per model; `defdistill-engine verdict` judges the same files again.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.attacks.cw_l2 import CWL2Config
from engine.attacks.hop_skip_jump import HSJAConfig
from engine.attacks.jsma import JSMAConfig
from engine.attacks.simba import SimBAConfig
from engine.checkpoints import model_digest
from engine.device import attack_batch_size, pair_chunk_elems
from engine.masking.checks import Verdict, judge
from engine.masking.honesty import TOLERANCE
from engine.masking.measure import MeasureConfig, Source, Subject, measure_evidence, source_examples
from engine.masking.remedy import RemedyConfig
from engine.numerics import exact_float32
from engine.presets import AttackConfig
from engine.runs.context import RunContext
from engine.runs.events import CheckRow, VerdictMade
from engine.runs.run_results import Freshness, RunResults


def check_inputs(exp: RunContext, chosen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs, their labels, one seeded random wrong target each): C&W's average case."""
    from engine.runs.cw_phase import cw_targets

    acfg = exp.preset.attack
    inputs = chosen[: acfg.check_samples or len(chosen)]
    labels = exp.data.y_test[inputs]
    _idx, targets, _avg = cw_targets(labels, ["average"], acfg.seed, held_out=inputs)
    return inputs, labels, targets


def measure_config(acfg: AttackConfig, device: torch.device | None = None, n: int = 0) -> MeasureConfig:
    """The evidence's budgets, from a preset's attack section: the same for a run and for a library call
    that repeats it."""
    batch = attack_batch_size(acfg.batch_size, device, n) if device is not None else 1024
    return MeasureConfig(
        jsma=JSMAConfig(theta=acfg.theta, upsilon=acfg.upsilon, no_pair=acfg.no_pair, batch_size=batch,
                        pair_chunk=pair_chunk_elems(device) if device is not None else JSMAConfig().pair_chunk),
        cw=CWL2Config(**acfg.cw_l2.model_dump(exclude={"samples"}), batch_size=batch),
        simba=SimBAConfig(epsilon=acfg.simba_epsilon, max_queries=acfg.simba_queries, batch_size=batch,
                          seed=acfg.seed),
        hsja=HSJAConfig(steps=acfg.hsja_steps),
        remedy=RemedyConfig(samples=acfg.estimate_samples, sigma=acfg.estimate_sigma, seed=acfg.seed),
        kappas=tuple(acfg.transfer_kappas), checks=tuple(acfg.checks), run_remedy=acfg.remedy)


def verdict_event(v: Verdict, evidence: Any, stale: list[str], run_dir: Path) -> VerdictMade:
    text = v.text
    if stale:  # said with the verdict: what was left out, and how to measure it on this checkpoint
        text += (f". Left out, measured on another checkpoint of {v.model} (its weights changed since): "
                 f"{', '.join(sorted(set(stale)))}; measure them again with `defdistill-engine attack "
                 f"{run_dir} --model {v.model} --checks`")
    return VerdictMade(model=v.model, verdict=v.verdict, text=text, remedy=v.remedy,
                       checks=[CheckRow(**asdict(c)) for c in v.checks], evidence=asdict(evidence))


def judge_from_files(run_dir: Path, name: str, model: nn.Module | None, preset_attack: AttackConfig,
                     inputs: list[int], targets: list[int], labels: list[int], x: torch.Tensor | None,
                     temperature: float | None, source: tuple[str, nn.Module, Path] | None,
                     legacy_gradients: dict[str, Any] | None) -> VerdictMade:
    """A finished run's verdict for `name`, judged again from its files without attacking anything
    (`defdistill-engine verdict`, sweeps): the same evidence path, read only."""
    freshness = Freshness(run_dir, name)
    results = RunResults(run_dir, name, writable=False, freshness=freshness, legacy_gradients=legacy_gradients)
    xs = x if x is not None else torch.zeros(len(inputs), 1)
    subject = Subject(name, model if model is not None else nn.Identity(), xs, torch.tensor(targets), inputs,
                      results, labels=torch.tensor(labels), temperature=temperature)
    src = None
    if source is not None and model is not None and x is not None:
        label, src_model, src_dir = source
        src = Source(label, src_model, RunResults(src_dir, _source_name(label), writable=False))
    cfg = measure_config(preset_attack)
    evidence = measure_evidence(subject, cfg, src)
    return verdict_event(judge(evidence), evidence, freshness.stale, run_dir)


def _source_name(label: str) -> str:
    return label.removeprefix("the ")


def _source(exp: RunContext, label: str, model: nn.Module) -> Source:
    return Source(label, model, RunResults(exp.rundir.path, _source_name(label), writable=True,
                                           digest=model_digest(model.state_dict()), emit=exp.emit,
                                           pause_point=exp.pause_point))


def run_verdict_phase(exp: RunContext, summary: dict[str, Any], chosen: torch.Tensor, models: list[str]) -> None:
    acfg = exp.preset.attack
    if not acfg.checks:
        return
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
                              temperature=trained.temperature if trained.temperature != 1.0 else None,
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
            summary.setdefault("verdict", {})[name] = asdict(event)
            if evidence.honesty is not None:
                summary.setdefault("gradient_honesty", {})[name] = {
                    "n_inputs": evidence.honesty[1], "disagreeing_inputs": evidence.honesty[0],
                    "disagreeing_at_every_step": evidence.honesty_every_step, "tolerance": TOLERANCE,
                    "median_error_by_step": evidence.honesty_errors}
            exp.emit(event)
