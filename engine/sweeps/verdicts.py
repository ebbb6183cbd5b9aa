"""Verdicts for a finished run directory, from its files (the sweep's collection, `defdistill-engine
verdict`, the report). A sweep's students never saw the baseline in their own runs, so
the baseline's transfer examples (baseline/attacks/baseline-transfer.npz, and its JSMA-F examples)
are replayed here on each student's checkpoint."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from engine.errors import CheckpointError, RunDirError
from engine.runs.rundir import ATTACKS, RunDir
from engine.runs.verdict_phase import TRANSFER_FILE, assemble_verdict


def _load_model(run_dir: Path, phase: str):
    from engine.checkpoints import unpack_state
    from engine.model_factory import build_model
    from engine.presets import preset_from_toml

    rd = RunDir(run_dir)
    preset = preset_from_toml(rd.read_preset_toml(), str(run_dir / "preset.toml"))
    saved = rd.load_tensors(phase)
    if saved is None:
        return None
    net = build_model(preset, load_weights=False)
    try:
        unpack_state(saved[0], saved[1], net, None)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {rd.checkpoint_path(phase)} does not fit its run ({type(exc).__name__}); "
                              "restore it, or delete the run and repeat the command that made it") from None
    return net.eval()


def run_verdicts(run_dir: Path, baseline_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """model -> the verdict's fields, for every attacked model of a finished run."""
    summary = RunDir(run_dir).read_summary()
    if summary is None:
        raise RunDirError(f"{run_dir} has no summary.json: the run has not finished; `defdistill-engine resume "
                          f"{run_dir}` first")
    source = baseline_dir or run_dir
    transfer = source / ATTACKS / TRANSFER_FILE
    models = sorted({k.split("-", 1)[0] for k in summary.get("attacks", {})},
                    key=["baseline", "teacher", "student"].index)
    out = {}
    for name in models:
        model = _load_model(run_dir, name) if transfer.exists() and name != "baseline" else None
        out[name] = asdict(assemble_verdict(run_dir, summary, name, model, transfer if model is not None else None,
                                            source / ATTACKS / "baseline-softmax.npz"))
    return out
