"""A user's install, not the developer's checkout: the project built as a wheel, installed (not
editable) into a fresh virtual environment outside the checkout, run from a folder with no presets/
or tui/ in it. The presets and the dashboard's styles come from the installed package; the dashboard
draws in tmux and quits on its keys. The interpreter is the oldest Python the project declares."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

from conftest import ROOT, wait_until
from engine.sessions.listing import run_state

SOURCES = ("pyproject.toml", "README.md", "engine", "tui", "presets")  # what a source distribution holds
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_running_python_is_the_oldest_the_project_declares():
    """CI runs the suite on the oldest declared Python: the declaration is what was tested."""
    floor = re.fullmatch(r">=\s*(\d+)\.(\d+)", PYPROJECT["project"]["requires-python"])
    assert floor, PYPROJECT["project"]["requires-python"]
    assert sys.version_info[:2] >= (int(floor[1]), int(floor[2]))
    if os.environ.get("CI"):
        assert sys.version_info[:2] == (int(floor[1]), int(floor[2])), "CI must run the oldest declared Python"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the environment's bin/, a folder outside the checkout to run from)."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(
            ROOT / name, src / name, **({"symlinks": True, "ignore": shutil.ignore_patterns("__pycache__")}
                                        if (ROOT / name).is_dir() else {}))
    pip = [sys.executable, "-m", "pip"]
    # built with this interpreter's setuptools (nothing downloaded), as `pip wheel .` or `python -m build` would
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src)],
                   check=True, capture_output=True, text=True, timeout=300)
    wheel = next((tmp / "dist").glob("defdistill-*.whl"))
    # A fresh environment that sees the packages of the interpreter running this suite (torch is
    # gigabytes: not copied again) but not the checkout: the project itself is installed from the wheel,
    # not editable. Not `system_site_packages`: inside a virtual environment that names the *base*
    # interpreter's packages, where none of the dependencies are.
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    (_site_packages(python) / "_suite_packages.pth").write_text("\n".join(_suite_site_packages()) + "\n")
    subprocess.run([*pip, "--python", str(python), "install", "-q", "--no-index", "--no-deps", "--force-reinstall",
                    str(wheel)], check=True, capture_output=True, text=True, timeout=300)
    check = subprocess.run([*pip, "--python", str(python), "check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr  # every declared dependency is satisfied
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return env_dir / "bin", elsewhere


def _suite_site_packages() -> list[str]:
    """The folders this interpreter imports installed packages from (a virtual environment's own, the
    system's, the user's), in order. A .pth file lists them as plain paths: their own .pth files (an
    editable install of this checkout) are not read, so the checkout stays invisible."""
    return [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]


def _site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True, timeout=60)
    return Path(out.stdout.strip())


def _run(bin_dir: Path, cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})


@pytest.mark.slow
def test_the_wheel_carries_presets_and_styles_and_runs_outside_the_checkout(installed):
    bin_dir, cwd = installed
    where = _run(bin_dir, cwd, "python", "-c", "import engine, tui; print(engine.__file__); print(tui.__file__)")
    assert where.returncode == 0, where.stderr
    assert all(str(bin_dir.parent) in line and str(ROOT) not in line for line in where.stdout.splitlines()), where
    version = _run(bin_dir, cwd, "defdistill-engine", "--version")
    assert version.returncode == 0 and version.stdout.startswith("defdistill-engine "), version
    listed = _run(bin_dir, cwd, "defdistill-engine", "presets")
    shipped = sorted(p.stem for p in (ROOT / "presets").glob("*.toml"))
    assert listed.returncode == 0 and sorted(ln.split()[0] for ln in listed.stdout.splitlines()) == shipped, listed
    checked = _run(bin_dir, cwd, "defdistill-engine", "check", "digits")
    assert checked.returncode == 0 and 'name = "digits"' in checked.stdout, checked.stderr
    run = _run(bin_dir, cwd, "defdistill-engine", "run", "digits", "--run-dir", "one-epoch", "--set",
               "training.epochs=1", "--set", "data.train_limit=128", "--set", "data.test_limit=64", "--set",
               "attack.enabled=false", "--set", "device='cpu'")
    assert run.returncode == 0, run.stderr[-2000:]
    assert (cwd / "one-epoch" / "summary.json").is_file() and "note: device" in run.stderr  # notices shown
    styles = _run(bin_dir, cwd, "python", "-c", "from importlib.resources import files; "
                  "print(files('tui').joinpath('styles.tcss').read_text()[:200])")
    assert styles.returncode == 0 and "{" in styles.stdout, styles


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")
def test_the_installed_dashboard_draws_in_tmux_and_quits_on_its_keys(installed):
    bin_dir, cwd = installed
    socket, session, run_dir = f"defdistill-test-{os.getpid()}", "wheel", cwd / "dash"

    def tmux(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=30)

    # COLUMNS/LINES from the test runner's environment would pin the app to 80 columns, not tmux's 120
    command = (f"cd {cwd} && env -u COLUMNS -u LINES {bin_dir / 'defdistill-tui'} digits --run-dir {run_dir} "
               "--set training.epochs=100 --set data.train_limit=256 --set data.test_limit=64 "
               "--set attack.enabled=false --set device='cpu'")
    assert tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", command).returncode == 0
    try:
        panels = ("loss / accuracy", "softmax confidence", "attacks", "events", "pause", "quit")

        def drawn_while_training() -> bool:
            screen = tmux("capture-pane", "-p", "-t", session).stdout
            epoch = re.search(r"epoch (\d+)/100", screen)  # the status line, redrawn about once a second
            return all(p in screen for p in panels) and epoch is not None and int(epoch[1]) >= 2

        try:
            wait_until(drawn_while_training, 180, "the installed dashboard drawing its panels while the run trains")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the screen:\n{tmux('capture-pane', '-p', '-t', session).stdout}") from None
        tmux("send-keys", "-t", session, "q")
        wait_until(lambda: "stop and quit" in tmux("capture-pane", "-p", "-t", session).stdout, 30, "the quit question")
        tmux("send-keys", "-t", session, "y")
        wait_until(lambda: run_state(run_dir).state == "stopped", 120, "the run stopped by the dashboard's q, y")
    finally:
        tmux("kill-server")
