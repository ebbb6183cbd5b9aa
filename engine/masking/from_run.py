"""The verdict assembled from a run's files: the budgets a preset's attack section gives the one evidence
path (engine/masking/measure.py), a finished run's verdict judged again read-only (`defdistill-engine
verdict`, sweeps), and the verdict as the record's typed event. The run's own verdict phase
(engine/steps/verdict_phase.py) measures through the same functions."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.attacks.cw_l2 import CWL2Config
from engine.attacks.hop_skip_jump import HSJAConfig
from engine.attacks.jsma import JSMAConfig
from engine.attacks.simba import SimBAConfig
from engine.device import attack_batch_size, pair_chunk_elems
from engine.masking.checks import Verdict, judge
from engine.masking.measure import MeasureConfig, Source, Subject, measure_evidence
from engine.masking.remedy import RemedyConfig
from engine.masking.run_results import Freshness, RunResults
from engine.presets import AttackConfig
from engine.record.events import VerdictMade


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


def verdict_event(v: Verdict, evidence: Any, stale: list[str], run_dir: Path | None) -> VerdictMade:
    text = v.text
    if stale:  # said with the verdict: what was left out, and how to measure it on this checkpoint
        text += (f". Left out, measured on another checkpoint of {v.model} (its weights changed since): "
                 f"{', '.join(sorted(set(stale)))}; measure them again with `defdistill-engine attack "
                 f"{run_dir} --model {v.model} --checks`")
    return VerdictMade(model=v.model, verdict=v.verdict, text=text, remedy=v.remedy,
                       checks=list(v.checks), evidence=asdict(evidence))


@dataclass(frozen=True)
class CheckSet:
    """The inputs a run judged a model on (from its attack files): held-out indices, labels, one target each
    (C&W's average case) and the images."""

    inputs: list[int]
    labels: list[int]
    targets: list[int]
    x: torch.Tensor


def judge_from_files(run_dir: Path, name: str, model: nn.Module | None, preset_attack: AttackConfig,
                     checked: CheckSet, temperature: float | None, source: tuple[str, nn.Module, Path] | None,
                     legacy_gradients: dict[str, Any] | None) -> VerdictMade:
    """A finished run's verdict for `name`, judged again from its files without attacking anything
    (`defdistill-engine verdict`, sweeps): the same evidence path, read only."""
    freshness = Freshness(run_dir, name)
    results = RunResults(run_dir, name, writable=False, freshness=freshness, legacy_gradients=legacy_gradients)
    subject = Subject(name, model if model is not None else nn.Identity(), checked.x, torch.tensor(checked.targets),
                      checked.inputs, results, labels=torch.tensor(checked.labels), temperature=temperature)
    src = None
    if source is not None and model is not None:
        label, src_model, src_dir = source
        src = Source(label, src_model, RunResults(src_dir, source_name(label), writable=False))
    cfg = measure_config(preset_attack)
    evidence = measure_evidence(subject, cfg, src)
    return verdict_event(judge(evidence), evidence, freshness.stale, run_dir)


def source_name(label: str) -> str:
    return label.removeprefix("the ")
