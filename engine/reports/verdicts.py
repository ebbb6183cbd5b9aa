"""`defdistill-engine verdict`: the verdicts of a finished run or sweep as a table or rows for JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import RunDirError
from engine.record.rundir import read_json
from engine.sweeps.plan import SWEEP_FILE
from engine.sweeps.verdicts import run_verdicts


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
    path = Path(path)
    if (path / SWEEP_FILE).exists():
        r = read_json(path / SWEEP_FILE, "run the same `defdistill-engine sweep` again to rebuild it")
        rows = [("no distillation", r["baseline"].get("verdict"))]
        rows += [(f"T={t}", e.get("verdict")) for t, e in r["by_temperature"].items()]
        return [(k, v) for k, v in rows if v]
    if (path / "summary.json").exists():
        return list(run_verdicts(path).items())
    raise RunDirError(f"{path} holds neither sweep.json nor summary.json; give a finished run or sweep directory")
