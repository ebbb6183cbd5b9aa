"""The files a person downloads from the results screen: report.md and PNG figures, made on demand."""

from __future__ import annotations

from pathlib import Path

from engine.errors import RunDirError


def result_files(run_dir: Path, sweep_dir: Path | None = None) -> list[Path]:
    """report.md (written now if the run or sweep has finished) and its PNGs: a sweep's figures, or
    for a single run a grid of its adversarial examples."""
    from engine.sweeps.figures import adversarial_grid
    from engine.sweeps.report import write_report

    if sweep_dir is not None and (sweep_dir / "sweep.json").exists():
        report = write_report(sweep_dir)
        return [report, *sorted(sweep_dir.glob("*.png"))]
    if not (run_dir / "summary.json").exists():
        raise RunDirError(f"{run_dir} has not finished: report.md and figures come once its attacks are done")
    report = write_report(run_dir)
    png = run_dir / "adversarial_examples.png"
    attacks = run_dir / "attacks"
    rows = [(f"{p.stem.replace('-', chr(10), 1)}", p) for p in sorted(attacks.glob("*.npz"))
            if not p.name.startswith("baseline-transfer")]
    adversarial_grid(rows, png)
    return [report, png] if png.exists() else [report]
