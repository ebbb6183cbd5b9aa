"""bench/gpu.py runs end to end at CPU sizes (on a GPU box it runs the real sizes by hand)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_gpu_bench_runs_on_the_cpu_and_writes_its_table(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, "bench/gpu.py", "--small", "--device", "cpu", "--no-compile",
                           "--protocol", "none", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    variants = {(r["arch"], r["variant"]) for r in result["training"]}
    assert variants == {(a, v) for a in ("mnist", "cifar10") for v in ("plain", "resident+throttled")}
    assert all(r["images_per_second"] > 0 for r in result["training"])
    assert result["jsma"][0]["attacks"] == 18 and result["jsma"][0]["attacks_per_second"] > 0
    assert result["versions"]["torch"] and "s/epoch" in proc.stdout
