"""The files a person downloads from the results screen: report.md and PNG figures, made on demand
(`defdistill-engine report PATH --json`)."""

from __future__ import annotations

from pathlib import Path

from engine.errors import RunDirError
from engine.reports.figures import adversarial_grid
from engine.reports.report import write_report


def result_files(path: Path, compare: Path | None = None) -> list[Path]:
    """report.md (written now) and its PNGs: a sweep's figures, or for a single run a grid of its
    adversarial examples."""
    path = Path(path)
    if (path / "sweep.json").exists():
        report = write_report(path, compare)
        return [report, *sorted(path.glob("*.png"))]
    if not (path / "summary.json").exists():
        raise RunDirError(f"{path} has not finished: report.md and figures come once its attacks are done")
    report = write_report(path, compare)
    png = path / "adversarial_examples.png"
    attacks = path / "attacks"
    rows = [(f"{p.stem.replace('-', chr(10), 1)}", p) for p in sorted(attacks.glob("*.npz"))
            if not p.name.startswith("baseline-transfer")]
    adversarial_grid(rows, png)
    return [report, png] if png.exists() else [report]
