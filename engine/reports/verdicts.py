"""`defdistill-engine verdict`: the verdicts of a finished run or sweep as a table or rows for JSON."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from engine.deployment import label as temperature_label
from engine.errors import RunDirError
from engine.masking.verdict_table import verdict_table
from engine.record.rundir import read_json
from engine.sweeps.plan import SWEEP_FILE
from engine.sweeps.result import SweepResult
from engine.sweeps.verdicts import run_verdicts


def format_verdicts(rows: list[tuple[str, dict[str, Any]]], long: bool = False) -> str:
    """The table `defdistill-engine verdict` prints: per model its verdict, then one short row per check
    (`long`: each check's full evidence beneath it)."""
    return "\n\n".join(verdict_table(label, v, long=long) for label, v in rows)


EXIT_FOUND = 1  # --fail-on: a verdict asked to fail on was found


def fail_on_exit(rows: list[tuple[str, dict[str, Any]]], fail_on: list[str]) -> int:
    """`verdict` and `judge` under --fail-on: EXIT_FOUND (said on stderr) when a row's verdict is one of
    `fail_on`, else 0."""
    found = sorted({v["verdict"] for _label, v in rows} & set(fail_on))
    if found:
        print(f"defdistill-engine: verdict {', '.join(found)} found (--fail-on)", file=sys.stderr)
        return EXIT_FOUND
    return 0


def verdict_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(model, or T for a sweep) -> its verdict's fields, for `verdict` and `verdict --json`."""
    path = Path(path)
    if (path / SWEEP_FILE).exists():
        r = SweepResult.from_json(read_json(path / SWEEP_FILE, "run the same `defdistill-engine sweep` again to "
                                            "rebuild it"), path / SWEEP_FILE)
        rows = [("no distillation", r.baseline.verdict)]
        rows += [(f"T={temperature_label(t)}", e.verdict) for t, e in r.by_temperature.items()]
        return [(k, v) for k, v in rows if v]
    if (path / "summary.json").exists():
        return list(run_verdicts(path).items())
    raise RunDirError(f"{path} holds neither sweep.json nor summary.json; give a finished run or sweep directory")
