"""The declared floors, tested: a fresh virtual environment with the oldest Python the project declares and
the lowest version of every direct dependency its declared ranges allow (uv's `--resolution lowest-direct`,
which still satisfies what those packages require of each other), then the test suite run in it.

    python bench/dependency_floor.py                  # writes bench/results/dependency-floor.json
    python bench/dependency_floor.py --resolution highest   # the same with the newest releases

It downloads what it installs from the package registry (several GB: torch's CUDA build and its libraries)
into a folder under /tmp, and needs `uv` (installed into a tool folder of its own if missing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def oldest_python() -> tuple[str, Path]:
    """The oldest Python `requires-python` allows, found on PATH or under pyenv."""
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    m = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec)
    if not m:
        raise SystemExit(f"requires-python {spec!r} is not of the form '>=X.Y'")
    version = f"{m[1]}.{m[2]}"
    found = shutil.which(f"python{version}")
    if found is None:
        pyenv = sorted((Path.home() / ".pyenv" / "versions").glob(f"{version}.*/bin/python"))
        found = str(pyenv[-1]) if pyenv else None
    if found is None:
        raise SystemExit(f"no Python {version} on PATH or under ~/.pyenv/versions")
    return version, Path(found)


def uv_binary(tools: Path) -> str:
    if shutil.which("uv"):
        return "uv"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(tools), "uv"], check=True)
    return str(tools / "bin" / "uv")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", choices=["lowest-direct", "highest"], default="lowest-direct")
    ap.add_argument("--pytest-args", default="-q -rfE -p no:cacheprovider -m 'not slow'",
                    help="what the suite is run with (default: its fast part)")
    ap.add_argument("--out", default=str(RESULTS / "dependency-floor.json"))
    args = ap.parse_args()

    version, python = oldest_python()
    work = Path(tempfile.mkdtemp(prefix="defdistill-floor-"))
    uv = uv_binary(work / "tools")
    env_dir = work / "venv"
    subprocess.run([uv, "venv", "-q", "--python", str(python), str(env_dir)], check=True)
    venv_python = env_dir / "bin" / "python"
    env = {**os.environ, "UV_CACHE_DIR": str(work / "uv-cache")}
    t0 = time.time()
    install = subprocess.run([uv, "pip", "install", "--python", str(venv_python), "--resolution", args.resolution,
                              f"{ROOT}[test]"], capture_output=True, text=True, env=env)
    installed_s = time.time() - t0
    if install.returncode != 0:
        print(install.stderr[-3000:], file=sys.stderr)
    freeze = subprocess.run([uv, "pip", "freeze", "--python", str(venv_python)], capture_output=True, text=True,
                            env=env).stdout
    versions = dict(line.split("==", 1) for line in freeze.splitlines() if "==" in line)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    direct = {re.split(r"[<>=!~ \[]", d, maxsplit=1)[0].lower(): d for d in declared}
    result = {
        "resolution": args.resolution, "python": version, "interpreter": str(python),
        "machine": f"{platform.system()} {platform.machine()}", "install_ok": install.returncode == 0,
        "install_seconds": round(installed_s, 1),
        "direct": {name: {"declared": spec, "installed": versions.get(name)} for name, spec in direct.items()},
        "test_extra": {k: versions.get(k) for k in ("pytest", "ray", "textual-serve", "playwright", "tensorboard",
                                                    "hypothesis", "pytest-xdist")},
    }
    if install.returncode == 0:
        t0 = time.time()
        # the checkout's tests on the installed dependencies (the package itself is the same code)
        test = subprocess.run(f"{venv_python} -m pytest {args.pytest_args}", shell=True, cwd=ROOT,
                              capture_output=True, text=True, env={**env, "PYTHONDONTWRITEBYTECODE": "1"})
        tail = test.stdout.strip().splitlines()
        result.update(tests_exit=test.returncode, tests_seconds=round(time.time() - t0, 1),
                      tests_summary=tail[-1] if tail else "", pytest_args=args.pytest_args,
                      failures=[ln for ln in tail if ln.startswith(("FAILED", "ERROR"))][:30])
        print(test.stdout[-6000:])
    else:
        result["install_error"] = install.stderr[-2000:]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "install_error"}, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0 if install.returncode == 0 and result.get("tests_exit") == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
