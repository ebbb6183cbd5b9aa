"""A 2-temperature sweep end to end: sweep.json, figures and report.md against the runs' own numbers."""

from __future__ import annotations

import json
import struct

import pytest

from conftest import SWEEP_ARGS, cli, copy_run, pilot_wait_until


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


def _png_text(path) -> dict[str, str]:
    """The PNG's tEXt chunks (matplotlib writes savefig's metadata there)."""
    data, out, i = path.read_bytes(), {}, 8
    while i < len(data):
        (length,) = struct.unpack(">I", data[i:i + 4])
        kind, body = data[i + 4:i + 8], data[i + 8:i + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        i += 12 + length
    return out


@pytest.mark.slow
def test_two_temperature_sweep_end_to_end(small_sweep, tmp_path):
    sweep = copy_run(small_sweep, tmp_path / "sweep")
    result = json.loads((sweep / "sweep.json").read_text())
    assert result["temperatures"] == [2.0, 5.0] and result["seeds"] == [0, 1]
    runs = ["T-2-s0", "T-2-s1", "T-5-s0", "T-5-s1", "baseline-s0", "baseline-s1"]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == runs
    # sweep.json holds each run directory's own numbers, seed by seed, and their mean
    for t in ("2", "5"):
        entry = result["by_temperature"][t]
        assert [e["seed"] for e in entry["per_seed"]] == [0, 1]
        for seeded in entry["per_seed"]:
            run = sweep / f"T-{t}-s{seeded['seed']}"
            summary = json.loads((run / "summary.json").read_text())
            assert summary["temperature"] == float(t)
            assert seeded["accuracy"] == summary["accuracy"]["student"]
            for out in ("softmax", "logits", "softmax_T"):
                rec = json.loads((run / "attacks" / f"student-{out}.json").read_text())
                assert seeded["success_rate"][out] == rec["success_rate"] and rec["n_attacks"] == 18
            cw = json.loads((run / "attacks" / "student-cw_l2.json").read_text())
            assert seeded["success_rate"]["cw_l2"] == cw["cases"]["average"]["success_rate"]
            assert seeded["cw_distance"]["cw_l2"]["l2"] == cw["cases"]["average"]["mean_l2"]
        accs = [e["accuracy"] for e in entry["per_seed"]]
        assert entry["accuracy"] == pytest.approx(sum(accs) / 2) and entry["spread"]["accuracy"] == pytest.approx(
            abs(accs[0] - accs[1]) / 2)
    for seed in (0, 1):
        base = json.loads((sweep / f"baseline-s{seed}" / "summary.json").read_text())
        assert result["baseline"]["per_seed"][seed]["accuracy"] == base["accuracy"]["baseline"]
        assert set(base["accuracy"]) == {"baseline"}  # the baseline is trained once per seed, not per temperature
    for name in ("success_vs_temperature", "accuracy_vs_temperature", "gradient_amplitude", "adversarial_examples",
                 "cw_distance_vs_temperature"):
        w, h = _png_size(sweep / f"{name}.png")
        assert w > 300 and h > 200 and (sweep / f"{name}.png").stat().st_size > 5000
    report = (sweep / "report.md").read_text()
    for t in ("2", "5"):
        sm = result["by_temperature"][t]["success_rate"]["softmax"]
        assert f"| {t} | " in report and f"{100 * sm:.1f}%" in report
    assert f"{100 * result['baseline']['success_rate']['softmax']:.1f}%" in report
    assert "Carlini" in report and "success_vs_temperature.png" in report
    # gradient support per T (seed mean and spread), and its columns in the report's table
    for t in ("2", "5"):
        entry = result["by_temperature"][t]
        shares = [e["gradient_support"]["pixel_share"] for e in entry["per_seed"]]
        assert 0 < entry["gradient_pixel_share"] <= 1
        assert entry["gradient_pixel_share"] == pytest.approx(sum(shares) / 2)
        assert "gradient_pixel_share" in entry["spread"] and f"{100 * entry['gradient_pixel_share']:.1f}%" in report
    assert "| input gradient ≠ 0 | dead units |" in report
    assert "## Carlini & Wagner" in report and "| CW-L2 (L2) | average |" in report and "C&W: rho = -0.05" in report
    # the verdict per T: in sweep.json (with its checks), in report.md, and in the success figure
    described = _png_text(sweep / "success_vs_temperature.png")["Description"]
    assert "## Is the robustness real?" in report
    for t in ("2", "5"):
        v = result["by_temperature"][t]["verdict"]
        assert v["verdict"] in ("masked", "no sign of masking", "inconclusive") and v["checks"]
        assert any("baseline" in c["name"] for c in v["checks"]), v["checks"]  # replayed from the baseline
        assert f"| T={t} (seed 0; by seed: " in report and f"**{v['verdict']}**" in report
        assert f"T={t}: {v['verdict']}" in described
    assert result["baseline"]["verdict"]["verdict"] in report
    # running the same sweep again reuses every finished run
    before = {p: p.stat().st_mtime for p in sweep.rglob("summary.json")}
    again = cli("sweep", *SWEEP_ARGS, "--sweep-dir", str(sweep))
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime for p in sweep.rglob("summary.json")} == before


def test_sweep_rejects_bad_temperatures(tmp_path):
    from conftest import assert_one_line_error

    assert_one_line_error(cli("sweep", "digits", "--temperatures", "1,0,5", "--sweep-dir", str(tmp_path / "s")),
                          "--temperatures", "> 0")
    assert not (tmp_path / "s").exists()


def test_report_of_a_single_run(trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, run)
    proc = cli("report", str(run))
    assert proc.returncode == 0, proc.stderr
    text = (run / "report.md").read_text()
    acc = json.loads((run / "summary.json").read_text())["accuracy"]
    assert f"{100 * acc['student']:.1f}%" in text and "Setup" in text


@pytest.mark.slow
def test_dashboard_attached_to_a_sweep_shows_its_progress(small_sweep, tmp_path):
    import asyncio

    from scripted import NO_GPU
    from tui.__main__ import _parser, build_session
    from tui.app import DefdistillApp

    sweep = copy_run(small_sweep, tmp_path / "sweep")
    session = build_session(_parser().parse_args(["--attach", str(sweep)]))
    assert session.run_dir.parent == sweep

    async def run():
        app = DefdistillApp(session, telemetry=lambda: NO_GPU)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot_wait_until(pilot, lambda: app.state.sweep != "", what="the sweep's line")
            assert app.state.sweep == f"sweep done: {sweep / 'report.md'}"
        session.close()

    asyncio.run(run())
