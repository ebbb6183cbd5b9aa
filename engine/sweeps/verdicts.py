"""Verdicts for a finished run directory, judged again from its files through the one evidence path (the
sweep's collection, `defdistill-engine verdict`, the report). Nothing is attacked: a step the run did not
measure is left out. A sweep's students never saw the baseline in their own runs, so the baseline's
examples (its JSMA-F and CW-L2 attacks, its transfer examples) are replayed here on each student."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.deployment import DEPLOYED
from engine.errors import CheckpointError, RunDirError
from engine.masking.from_run import CheckSet, judge_from_files
from engine.presets import Preset
from engine.record.events import recorded_temperature
from engine.record.rundir import ATTACKS, RunDir, read_json

MODELS = ("baseline", "teacher", "student")


def _preset(run_dir: Path) -> Preset:
    from engine.presets import preset_from_toml

    return preset_from_toml(RunDir(run_dir).read_preset_toml(), str(run_dir / "preset.toml"))


def _load_model(run_dir: Path, phase: str) -> nn.Module | None:
    from engine.checkpoints import unpack_state
    from engine.model_factory import build_model, build_surrogate

    rd = RunDir(run_dir)
    preset = _preset(run_dir)
    saved = rd.load_tensors(phase)
    if saved is None:
        return None
    net = build_surrogate(preset, load_weights=False) if phase == "surrogate" else build_model(preset,
                                                                                                load_weights=False)
    try:
        unpack_state(saved[0], saved[1], net, None)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {rd.checkpoint_path(phase)} does not fit its run ({type(exc).__name__}); "
                              "restore it, or delete the run and repeat the command that made it") from None
    return net.eval()


def check_set(run_dir: Path, name: str, preset: Preset) -> CheckSet | None:
    """The inputs a run judged `name` on, from its attack files (held-out inputs, labels, targets, images)."""
    from engine.steps.cw_phase import cw_targets

    fix = f"delete it and run `defdistill-engine attack {run_dir} --checks` to redo it"
    for key in (f"{name}-softmax", f"{name}-cw_l2", f"{name}-logits"):
        record = read_json(run_dir / ATTACKS / f"{key}.json", fix)
        npz = run_dir / ATTACKS / f"{key}.npz"
        if record is None or "inputs" not in record or not npz.exists():
            continue
        with np.load(npz) as d:
            sample, label, x = d["sample"], d["label"], d["x"]
        chosen = record["inputs"][: preset.attack.check_samples or len(record["inputs"])]
        first = {int(s): i for i, s in reversed(list(enumerate(sample.tolist())))}
        if any(i not in first for i in range(len(chosen))):
            continue
        rows = [first[i] for i in range(len(chosen))]
        labels = torch.from_numpy(label[rows]).long()
        inputs = torch.tensor(chosen)
        _idx, targets, _avg = cw_targets(labels, ["average"], preset.attack.seed, held_out=inputs)
        return CheckSet(chosen, labels.tolist(), targets.tolist(), torch.from_numpy(x[rows]))
    return None


def _source(run_dir: Path, name: str, preset: Preset, baseline_dir: Path) -> tuple[str, nn.Module, Path] | None:
    """The transfer source a run used for `name`, loaded from its checkpoint."""
    if name != "baseline":
        model = _load_model(baseline_dir, "baseline")
        return ("the baseline", model, baseline_dir) if model is not None else None
    for phase in ("surrogate", "teacher"):
        if phase == "teacher" and preset.attack.surrogate.named:
            continue
        model = _load_model(run_dir, phase)
        if model is not None:
            return f"the {phase}", model, run_dir
    return None


def _temperature(run_dir: Path, name: str) -> float | None:
    record = read_json(run_dir / ATTACKS / f"{name}-softmax_T.json", "delete it and attack the run again") or {}
    t = recorded_temperature(record, "output_temperature")
    return t if t is not None and t != DEPLOYED else None


def run_verdicts(run_dir: Path, baseline_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """model -> the verdict's fields, for every attacked model of a finished run."""
    summary = RunDir(run_dir).read_summary()
    if summary is None:
        raise RunDirError(f"{run_dir} has no summary.json: the run has not finished; `defdistill-engine resume "
                          f"{run_dir}` first")
    preset = _preset(run_dir)
    source_dir = baseline_dir or run_dir
    models = sorted({k.split("-", 1)[0] for k in summary.attacks} & set(MODELS), key=MODELS.index)
    out = {}
    for name in models:
        found = check_set(run_dir, name, preset)
        if found is None:
            continue
        model = _load_model(run_dir, name)
        source = _source(run_dir, name, preset, source_dir) if model is not None else None
        legacy = {k: v for k, v in summary.gradient_amplitude.get(name, {}).items() if k != "values"}
        out[name] = asdict(judge_from_files(run_dir, name, model, preset.attack, found, _temperature(run_dir, name),
                                            source, legacy or None))
    return out
