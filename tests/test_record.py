"""The run's record as types: summary.json read back as a RunSummary, the phases' rows folded in by its one
owner, and a run directory written by the previous event schema (2: one `temperature` field with two
meanings) still opening in the dashboard and in `report`.

tests/data/run-schema2 is a small digits run made by commit 4997aa4 (schema 2), checkpoints left out."""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import pilot_wait_until
from engine.cli import main
from engine.errors import RunDirError
from engine.record.events import (
    SCHEMA_VERSION,
    AttackRow,
    AttackRows,
    EventType,
    ReadReport,
    RunSummary,
    recorded_temperature,
    renamed,
)
from engine.record.rundir import RunDir, iter_events
from engine.sweeps.result import SweepResult

OLD_RUN = Path(__file__).parent / "data" / "run-schema2"


def _old_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(OLD_RUN, run)
    return run


def test_summary_json_reads_back_as_the_type_it_was_written_from(tmp_path):
    run = _old_run(tmp_path)
    summary = RunDir(run).read_summary()
    assert isinstance(summary, RunSummary)
    assert isinstance(summary.attacks["student-cw_l2"], AttackRow)
    assert summary.verdict["student"].model == "student" and summary.verdict["student"].checks
    assert summary.gradient_support["baseline"].pixel_share > 0
    # written back, the file is the same bytes: its keys in their order, JSMA rows without C&W's fields and the
    # other way round, no empty tables
    before = (run / "summary.json").read_bytes()
    RunDir(run).write_summary(summary)
    assert (run / "summary.json").read_bytes() == before


def test_a_sweep_s_entries_are_found_by_the_temperature_the_plan_holds():
    entry = {"run_dir": "r", "accuracy": 0.9, "mean_abs_logit": 1.0, "saturated_share": None,
             "success_rate": {"softmax": 0.5}, "seconds": 1.0}
    result = SweepResult.from_json({"preset": "digits", "quick": True, "overrides": [], "dataset": "digits",
                                    "data_note": "", "temperatures": [2.0, 0.1234567], "baseline": entry,
                                    "by_temperature": {"2": entry, "0.123457": entry}, "seconds": 2.0})
    assert result.at(0.1234567) is result.by_temperature[0.123457] and result.at(2) is result.by_temperature[2.0]
    assert result.top == 2.0 and [e.success_rate["softmax"] for e in result.entries()] == [0.5, 0.5]
    with pytest.raises(RunDirError, match="wrong shape.*by_temperature"):
        SweepResult.from_json({**result.__dict__, "by_temperature": {"2": {"accuracy": "high"}}})


def test_a_request_s_rows_replace_their_own_rows_and_keep_the_rest(tmp_path):
    summary = RunDir(_old_run(tmp_path)).read_summary()
    row = replace(summary.attacks["student-softmax"], success_rate=0.5)
    new = AttackRow(success_rate=1.0, n_attacks=3, mean_features_changed=None, rho_adv=None, attacks_per_second=1.0,
                    method="cw_l0", case="average")
    later = summary.with_rows(AttackRows(attacks={"student-softmax": row, "student-cw_l0": new}))
    assert later.attacks["student-softmax"].success_rate == 0.5 and "student-cw_l0" in later.attacks
    assert later.attacks["baseline-softmax"] == summary.attacks["baseline-softmax"]
    assert list(later.attacks)[: len(summary.attacks)] == list(summary.attacks)  # the table's order kept
    assert later.verdict == summary.verdict and summary.attacks["student-softmax"].success_rate != 0.5


def test_the_old_schema_s_temperature_is_read_under_the_name_of_what_it_holds(tmp_path):
    run = _old_run(tmp_path)
    assert json.loads((run / "meta.json").read_text())["event_schema"] == 2 < SCHEMA_VERSION
    report = ReadReport()
    events = list(iter_events(run / "events.jsonl", report))
    assert report.skipped == 0 and events[-1].type == EventType.FINISHED
    started = {e.data.key: e.data for e in events if e.type == EventType.ATTACK_STARTED}
    assert started["student-softmax_T"].output_temperature == 100.0  # the T inside softmax(z/T)
    assert started["student-softmax"].output_temperature == 1.0
    assert started["student-cw_l2"].output_temperature is None  # schema 2 held the model's T here
    cw = {e.data.key: e.data for e in events if e.type == EventType.CW_FINISHED}
    assert cw["student-cw_l2"].model_temperature == 100.0 and cw["baseline-cw_l2"].model_temperature == 1.0
    record = json.loads((run / "attacks" / "student-softmax_T.json").read_text())
    assert recorded_temperature(record, "output_temperature") == 100.0
    # a new name already there wins over an old one
    assert renamed(EventType.CW_FINISHED, {"temperature": 1.0, "model_temperature": 5.0})["model_temperature"] == 5.0


@pytest.mark.functional  # the dashboard runs
def test_an_old_run_directory_opens_in_report_and_the_dashboard(tmp_path, capsys):
    run = _old_run(tmp_path)
    assert main(["report", str(run)]) == 0
    report = (run / "report.md").read_text()
    assert "## JSMA success rate" in report and "| student | 5.6% | 0.0% | 0.0% |" in report
    assert "## Carlini & Wagner (on the logits)" in report and "T=100" in report
    assert "## Is the robustness real?" in report

    from engine.client import replay
    from scripted import NO_GPU
    from tui.app import DefdistillApp
    from tui.screens.results import ResultsScreen

    session = replay(run)

    async def look() -> None:
        app = DefdistillApp(session, telemetry=lambda: NO_GPU)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot_wait_until(pilot, lambda: app.state.status == "finished", what="the old run replayed")
            assert app.state.summary is not None and app.state.summary.accuracy["baseline"] > 0.8
            assert set(app.state.cw_results) == {"baseline-cw_l2", "student-cw_l2"}
            assert set(app.state.verdicts) == {"baseline", "student"}
            await pilot.press("r")
            await pilot_wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen), what="the results screen")
            assert len(app.screen.keys) == 8  # six JSMA results and two C&W ones
        session.close()

    asyncio.run(look())


def test_a_sweep_whose_distilled_runs_all_failed_still_gets_its_report(tmp_path):
    """A sweep of one temperature whose teacher collapses (the clip-5 T = 5 of the mnist-t10k grid) ends with a
    baseline and a failure: its report says so instead of failing on an empty temperature list."""
    from engine.reports.report import write_report

    source = json.loads((Path(__file__).parents[1] / "docs" / "sweep-mnist-t10k-gap-quick-clip1" / "sweep.json")
                        .read_text())
    why = "the teacher collapsed to chance at epoch 8 (refused)"
    (tmp_path / "sweep.json").write_text(json.dumps({**source, "temperatures": [], "by_temperature": {},
                                                     "failed": {"T-5-s0": why}}))
    report = write_report(tmp_path).read_text()
    assert "## No distilled run finished" in report and f"- `T-5-s0`: {why}" in report
    assert "No distillation: JSMA-F success 90.7%" in report
