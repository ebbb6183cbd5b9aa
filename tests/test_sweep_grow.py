"""Sweeps that grow and go on: a failing temperature does not stop the others (exit 1, marked with its
reason), re-running the command resumes the unfinished sweep, --temperatures on an existing sweep runs
only the new ones (the finished runs are reused: same run ids), and a different seed set is refused."""

from __future__ import annotations

import json
import shlex

import pytest

from conftest import assert_one_line_error, cli, with_sets

# The least a sweep run can be and still train, attack and be collected: seconds per run on 2 cores.
TINY = ["digits", "--quiet", *with_sets(
    "training.epochs=1", "data.train_limit=200", "data.test_limit=60", "training.optimizer='adam'",
    "training.lr=0.001", "training.batch_size=32", "threads=2", "device='cpu'", "attack.samples=2",
    "attack.outputs=['softmax']", "attack.methods=['jsma']", "attack.checks=[]")]


def _ids(sweep) -> dict[str, str]:
    """Each run directory's id, from the meta.json written when it was created."""
    return {p.parent.name: json.loads(p.read_text())["run_id"] for p in sweep.glob("*/meta.json")}


@pytest.mark.slow
def test_sweep_goes_on_past_a_failure_resumes_and_grows(tmp_path):
    runs = tmp_path / "runs"
    sweep = runs / "sweep-tiny"
    broken = sweep / "T-5"  # a run directory the engine refuses: its preset.toml is not TOML
    broken.mkdir(parents=True)
    (broken / "preset.toml").write_text("this is [not toml\n")

    first = cli("sweep", *TINY, "--temperatures", "2,5", "--sweep-dir", str(sweep))
    assert first.returncode == 1, first.stderr[-2000:]
    result = json.loads((sweep / "sweep.json").read_text())
    assert result["temperatures"] == [2.0] and list(result["failed"]) == ["T-5"]
    assert "preset.toml" in result["failed"]["T-5"]
    assert f"sweep run {broken} failed" in first.stderr
    report = (sweep / "report.md").read_text()
    assert "## Runs that failed" in report and "`T-5`" in report
    ids = _ids(sweep)
    assert set(ids) == {"baseline", "T-2"}

    # a bad --set: one line, and no sweep folder made
    assert_one_line_error(cli("sweep", *TINY, "--set", "training.epochs=-1", "--runs", str(runs)), "training.epochs")
    assert sorted(p.name for p in runs.iterdir()) == ["sweep-tiny"]
    # a changed command beside an unfinished sweep: a new sweep, and the exact command that resumes the old one
    other = cli("sweep", *TINY, "--set", "attack.samples=1", "--temperatures", "2", "--runs", str(runs))
    assert other.returncode == 0, other.stderr[-2000:]
    assert len([p for p in runs.iterdir() if (p / "sweep.json").exists()]) == 2
    note = next(line for line in other.stderr.splitlines() if "resume it with:" in line)
    resume = shlex.split(note.split("resume it with: ", 1)[1])
    assert resume[:2] == ["defdistill-engine", "sweep"] and str(sweep) in resume

    # the same command without --sweep-dir resumes the unfinished sweep: only T-5 runs now
    for p in broken.iterdir():
        p.unlink()
    broken.rmdir()
    again = cli("sweep", *TINY, "--temperatures", "2,5", "--runs", str(runs))
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"resuming the unfinished sweep {sweep}" in again.stderr
    after = _ids(sweep)
    assert set(after) == {"baseline", "T-2", "T-5"} and {k: after[k] for k in ids} == ids
    assert json.loads((sweep / "sweep.json").read_text())["failed"] == {}

    # the printed command with a new temperature grows the sweep: only T-10 is trained
    grown = cli(*resume[1:], "--temperatures", "10")
    assert grown.returncode == 0, grown.stderr[-2000:]
    result = json.loads((sweep / "sweep.json").read_text())
    assert json.loads((sweep / "sweep-plan.json").read_text())["temperatures"] == [2.0, 5.0, 10.0]
    assert result["temperatures"] == [2.0, 5.0, 10.0]
    final = _ids(sweep)
    assert set(final) == {"baseline", "T-2", "T-5", "T-10"} and {k: final[k] for k in after} == after
    assert [result["by_temperature"][t]["run_id"] for t in ("2", "5")] == [after["T-2"], after["T-5"]]
    assert result["by_temperature"]["10"]["run_id"] == final["T-10"]

    # another seed set would mix two sweeps in one table: refused, and nothing of the sweep changes
    plan = (sweep / "sweep-plan.json").read_bytes()
    assert_one_line_error(cli("sweep", *TINY, "--seeds", "1", "--sweep-dir", str(sweep)), "different sweep", "--seeds")
    assert (sweep / "sweep-plan.json").read_bytes() == plan and _ids(sweep) == final
