"""The layers as a contract: import-linter (pyproject.toml, [tool.importlinter]) holds the engine's layers
and keeps the dashboard behind engine.client, and the dashboard starts without torch."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the tree at `root`, reading its pyproject.toml (the packages found on its path)."""
    return subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                           "sys.exit(lint_imports_command())", "--no-cache"],
                          cwd=root, capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": ""})


def test_the_import_contracts_are_kept():
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "3 kept, 0 broken" in proc.stdout


LAYERS, CIRCLE, DASHBOARD = "engine layers", "no circle", "the dashboard imports"


@pytest.mark.parametrize(("module", "line", "broken"), [
    # science reaching up into the attacks (what engine/metrics.py did before it was split)
    ("engine/metrics.py", "from engine.attacks.jsma import JSMAResult", {LAYERS}),
    # the record reaching up into the reports, or into the steps that write it (an arrow back up closes a
    # circle between the two packages too)
    ("engine/record/rundir.py", "import engine.reports.report", {LAYERS, CIRCLE}),
    ("engine/record/events.py", "import engine.steps.experiment", {LAYERS, CIRCLE}),
    # a step reaching up into the sessions that drive it
    ("engine/steps/experiment.py", "from engine.sessions.job import Job", {LAYERS, CIRCLE}),
    # a circle inside a package: context is what experiment reads, never the other way
    ("engine/steps/context.py", "import engine.steps.experiment", {CIRCLE}),
    # the dashboard going round the client interface
    ("tui/state.py", "from engine.record.events import Event", {DASHBOARD}),
])
def test_a_wrong_import_in_a_copy_breaks_the_contract(tmp_path, module, line, broken):
    for name in ("engine", "tui"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # a deliberate arrow the wrong way\n")
    proc = lint_imports(tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert f"{len(broken)} broken" in proc.stdout, proc.stdout[-3000:]
    broken_part = proc.stdout.split("Broken contracts", 1)[1]
    assert all(name in broken_part for name in broken), broken_part
    dotted = module.removesuffix(".py").replace("/", ".")
    package, name = dotted.rsplit(".", 1)
    # the offending import is named (a circle by its package and the edge to cut)
    assert dotted in broken_part or (f"in {package}." in broken_part and f".{name}" in broken_part), broken_part


def test_the_dashboard_imports_neither_torch_nor_matplotlib():
    code = ("import sys, tui.__main__, tui.app, tui.serve; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'matplotlib', 'torchvision', 'scipy'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
