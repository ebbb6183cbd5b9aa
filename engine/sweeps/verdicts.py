"""Verdicts for a finished run or sweep directory, from its files (`defdistill-engine verdict`, the
sweep's collection, the report). A sweep's students never saw the baseline in their own runs, so
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


def format_verdicts(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """The table `defdistill-engine verdict` prints: one block per model, its checks beneath."""
    lines = []
    for label, v in rows:
        lines.append(f"{label:<22} {v['verdict'].upper()}: {v['text']}")
        for c in v["checks"]:
            status = c.get("status") or ("fired" if c["fired"] else "clear")
            lines.append(f"  {status.upper():<9} {c['name']:<48} {c['evidence']}")
    return "\n".join(lines)


def verdict_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(model, or T for a sweep) -> its verdict's fields, for `verdict` and `verdict --json`."""
    from engine.sweeps.sweep import SWEEP_FILE

    path = Path(path)
    if (path / SWEEP_FILE).exists():
        from engine.runs.rundir import read_json

        r = read_json(path / SWEEP_FILE, "run the same `defdistill-engine sweep` again to rebuild it")
        rows = [("no distillation", r["baseline"].get("verdict"))]
        rows += [(f"T={t}", e.get("verdict")) for t, e in r["by_temperature"].items()]
        return [(k, v) for k, v in rows if v]
    if (path / "summary.json").exists():
        return list(run_verdicts(path).items())
    raise RunDirError(f"{path} holds neither sweep.json nor summary.json; give a finished run or sweep directory")


def verdict_table(path: Path) -> str:
    return format_verdicts(verdict_rows(path))
