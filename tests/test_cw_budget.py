"""bench/cw_budget.py: a run's CW-L2 attacked again on the same model, inputs and targets."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, assert_one_line_error


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "bench/cw_budget.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow  # the small sweep: its other users are slow tests
def test_the_runs_own_settings_repeat_its_numbers(small_sweep, tmp_path):
    """At the run's own settings the script must find what the run found, attack for attack: the same
    checkpoint, inputs and targets. A wrong model, input order or target would show here."""
    run = small_sweep / "T-5-s0"
    out = tmp_path / "same"
    proc = _bench(str(run), "--model", "student", "--settings-of-run", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["student"]
    for r in rows:
        stored = json.loads((run / "attacks" / f"{r['model']}-cw_l2.json").read_text())
        assert r["n_attacks"] == stored["n_attacks"]
        assert r["budget"]["succeeded"] == r["reference"]["succeeded"] == stored["n_succeeded"]
        assert r["only_budget"] == r["only_reference"] == 0
        if r["budget"]["mean_l2_where_both"] is not None:
            assert abs(r["budget"]["mean_l2_where_both"] - r["reference"]["mean_l2_where_both"]) < 1e-4
    assert "the run's own settings" in out.with_suffix(".md").read_text()


def test_a_run_without_cw_l2_is_one_line_and_exit_2(trained_run, tmp_path):
    proc = _bench(str(trained_run.run_dir), "--out", str(tmp_path / "x"))
    assert_one_line_error(proc, "student-cw_l2.npz", "defdistill-engine attack")
    assert not (tmp_path / "x.json").exists()
