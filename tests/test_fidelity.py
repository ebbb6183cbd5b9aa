"""The fidelity section marks each point against the paper's and says only what its numbers show."""

from __future__ import annotations

from engine.reports.fidelity import points, saturation_rank_correlation, section
from engine.sweeps.result import SweepResult


def _entry(**numbers) -> dict:
    return {"run_dir": "run", "accuracy": 0.98, "saturated_share": None, "success_rate": {}, "seconds": 1.0,
            **numbers}


def _sweep(success: dict[float, float], saturated: dict[float, float], spread: dict[float, float] | None = None,
           quick: bool = False) -> SweepResult:
    by_t = {}
    for t, s in success.items():
        e = _entry(success_rate={"softmax": s}, saturated_share=saturated.get(t), mean_abs_logit=10.0 * t)
        if spread and t in spread:
            e["spread"] = {"success_rate": {"softmax": spread[t]}}
        by_t[f"{t:g}"] = e  # as sweep.json keys them
    return SweepResult.from_json({"preset": "mnist-t10k", "quick": quick, "overrides": [], "dataset": "mnist-t10k",
                                  "data_note": "", "temperatures": sorted(success), "by_temperature": by_t,
                                  "baseline": _entry(mean_abs_logit=10.0), "seconds": 1.0})


def test_points_are_marked_against_the_paper_with_the_seed_spread_widening_the_band():
    # paper: T=1 91.4, T=5 25.0, T=100 0.8
    r = _sweep({1: 0.90, 5: 0.60, 100: 0.0}, {1: 0.0, 5: 0.3, 100: 1.0}, spread={5: 0.20})
    marks = {p["T"]: p["within"] for p in points(r)}
    assert marks == {1: True, 5: False, 100: True}  # 35 off: outside 10 + 20 of spread
    r = _sweep({1: 0.90, 5: 0.60, 100: 0.0}, {1: 0.0, 5: 0.3, 100: 1.0}, spread={5: 0.26})
    assert {p["T"]: p["within"] for p in points(r)}[5] is True  # 35 <= 10 + 26


def test_the_section_names_the_points_outside_and_what_was_measured():
    full = _sweep({1: 0.90, 5: 0.60, 100: 0.0}, {1: 0.0, 5: 0.3, 100: 1.0})
    quick = _sweep({1: 0.92, 5: 0.80, 100: 0.02}, {1: 0.0, 5: 0.1, 100: 0.9}, quick=True)
    text = "\n".join(section(full, quick))
    assert "1 of 3 points lie outside the band: T = 5 (+35.0 points)" in text
    assert "| 5 | 25.0% | 60.0% | ✗ | 30% |" in text
    assert "Spearman's rho = -1.00: success falls where the softmax saturates." in text
    assert "80.0% with the quick profile (5 epochs), 60.0% with this sweep's training (-20.0 points): longer " \
           "training moves this point toward the paper's." in text
    # a point that longer training pushes from above the paper's to below it is said to cross it
    full = _sweep({1: 0.90, 2: 0.60, 100: 0.0}, {1: 0.0, 2: 0.3, 100: 1.0})
    quick = _sweep({1: 0.92, 2: 0.95, 100: 0.02}, {1: 0.0, 2: 0.1, 100: 0.9}, quick=True)
    assert "(-35.0 points): the training length moves this point across the paper's (+12.3 -> -22.7 points)." \
        in "\n".join(section(full, quick))


def test_no_claim_about_saturation_where_the_numbers_do_not_support_it():
    # success does not follow saturation here: the section must not say it does
    r = _sweep({1: 0.90, 5: 0.60, 10: 0.0, 100: 0.5}, {1: 0.5, 5: 0.0, 10: 0.6, 100: 0.1})
    rho = saturation_rank_correlation(points(r))
    assert rho is not None and rho > -0.5
    text = "\n".join(section(r))
    assert "saturation alone does not explain the curve here" in text
    assert "success falls where" not in text


def test_a_sweep_whose_runs_came_from_different_code_says_so(tmp_path):
    """A resumed sweep can mix commits and torch versions; the report's setup names them all."""
    import json

    from engine.reports.report import _setup
    from engine.sweeps.collect import _provenance

    runs = []
    for name, commit, torch in [("baseline", "aaaaaaaaaaaa1", "2.14.1"), ("T-100", "bbbbbbbbbbbb2", "2.14.1")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "meta.json").write_text(json.dumps({"git_commit": commit, "torch": torch}))
        runs.append(tmp_path / name)
    prov = _provenance(runs)
    assert prov == {"commits": ["aaaaaaaaaa", "bbbbbbbbbb"], "torch": ["2.14.1"]}
    preset = {"name": "p", "seed": 0, "network": {"arch": "mnist", "dropout": 0.5},
              "training": {k: 1 for k in ("optimizer", "lr", "momentum", "batch_size", "epochs", "lr_decay",
                                          "momentum_decay", "decay_every", "loss_scale", "grad_clip")},
              "attack": {"theta": 1.0, "upsilon": 0.145, "samples": 1, "no_pair": "stop"}}
    lines = _setup(preset, {"git_commit": "aaaaaaaaaaaa1"}, "d", 60.0, False, prov)
    assert lines[-1] == "- the runs were made with defdistill commits aaaaaaaaaa, bbbbbbbbbb"
    assert not any("made with" in x for x in _setup(preset, {}, "d", 60.0, False, {"commits": ["a"], "torch": ["t"]}))
