"""Is the robustness real? The checks on hand-made evidence (equal budgets, intervals, attack failure
told apart from masking), the known-answer controls judged right, a researcher's own model given by
import path and weights judged through a run, and the verdict command's JSON and exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from conftest import QUICK, ROOT, built_once, cli, with_sets
from engine.attacks.cw_l2 import CWL2Config
from engine.attacks.simba import SimBAConfig
from engine.masking.checks import GRADIENT_FREE, LOGITS, SOFTMAX, TRANSFER, Evidence, interval, judge
from engine.masking.controls import confusion, judge_controls, judged_right, wrapped_weights
from engine.masking.measure import MeasureConfig
from engine.masking.remedy import RemedyConfig
from engine.masking.statistics import n_to_decide, sign_test


def _clean(n: int = 30, f_wins: float = 0.5) -> Evidence:
    """A model with intact gradients: every attack pair agrees, CW-L2 finds the smallest examples."""
    k = round(n * f_wins)
    pairs = [(i, i < k, i < k) for i in range(n)]  # (input, JSMA on the logits won, JSMA-F won): one target each
    return Evidence("m", whitebox_success=f_wins, zero_gradients=(0, n), randomized=(0, n), randomized_calls=8,
                    honesty=(0, n), honesty_every_step=0, jsma_pairs={"JSMA on the logits": pairs},
                    l2_pairs={"SimBA": [3.0] * n, "CW-L2 kappa=40 from the baseline": [None] * n},
                    comparator_kinds={"SimBA": GRADIENT_FREE, "CW-L2 kappa=40 from the baseline": TRANSFER},
                    cw_l2=[1.5] * n, cw_escalated=True, cw_settings={"escalations": 2})


def test_interval_is_clopper_pearson_and_the_n_from_which_a_check_stays_decided():
    low, high = interval(0, 30)
    assert low == 0 and high == pytest.approx(1 - 0.025 ** (1 / 30), rel=1e-6)  # the exact bound at k = 0
    assert n_to_decide(0.0, 0.20) == 17  # 0/17 is the first whose upper bound is under 20%
    assert interval(30, 30)[0] == pytest.approx(0.025 ** (1 / 30), rel=1e-6)
    # at a share of 5% rounding decides some n early and undoes it at the next (1/20 undecided, 1/21 clear,
    # 1/24 ...): the n returned is the one from which every larger n decides
    n = n_to_decide(0.05, 0.20)
    assert all(interval(round(0.05 * m), m)[1] < 0.20 for m in range(n, n + 300))
    assert interval(round(0.05 * (n - 1)), n - 1)[1] >= 0.20


def test_the_sign_test_counts_both_directions():
    assert sign_test(10, 0) < 0.01 and sign_test(5, 5) == 1.0 and sign_test(0, 0) == 1.0
    e = _clean()  # JSMA on the logits wins 9 inputs, JSMA-F wins 12: both directions, no masking
    rows = [(i, True, False) for i in range(9)] + [(i, False, True) for i in range(9, 21)]
    e.jsma_pairs["JSMA on the logits"] = rows + [(i, True, True) for i in range(21, 30)]
    assert judge(e).verdict != "masked", judge(e).text
    rows = [(i, True, False) for i in range(15)]
    e.jsma_pairs["JSMA on the logits"] = rows + [(i, True, True) for i in range(15, 30)]
    assert judge(e).verdict == "masked"


def test_a_jsma_check_counts_inputs_not_their_nine_targets():
    e = _clean()  # on 3 inputs of 30, JSMA on the logits wins all 9 targets where JSMA-F loses: 27 of 270 attacks
    e.jsma_pairs["JSMA on the logits"] = [(i, i < 3, False) for i in range(30) for _t in range(9)]
    check = next(c for c in judge(e).checks if c.name.startswith("JSMA on the logits"))
    assert check.n == 30 and check.value == pytest.approx(0.1) and check.status != "fired"


def test_no_sign_of_masking_when_every_check_is_clear_and_no_cliff_at_fifty_percent():
    for wb in (0.02, 0.49, 0.51, 0.97):  # the white-box success alone never decides the verdict
        v = judge(_clean(f_wins=wb))
        assert v.verdict == "no sign of masking", v.text
        assert "not a claim of robustness" in v.text.lower()
        assert all(c.status == "clear" and c.n == 30 and c.high is not None for c in v.checks)


def test_each_masking_sign_fires_and_names_its_gradient():
    e = _clean()
    e.zero_gradients = (25, 30)
    v = judge(e)
    assert v.verdict == "masked" and SOFTMAX in v.text and "vanishing gradients" in v.text, v.text
    assert "CW-L2 on the logits reached 30/30" in v.remedy, v.remedy  # the remedy for a softmax: the logits
    e = _clean()
    e.l2_pairs["SimBA"] = [2.0] * 12 + [3.0] * 18
    e.cw_l2 = [None] * 12 + [1.5] * 18  # CW-L2 missed 12 after its escalations, SimBA reached them
    v = judge(e)
    assert v.verdict == "masked" and LOGITS in v.text and "SimBA" in v.text and "12/30" in v.text, v.text
    e = _clean()
    e.honesty, e.honesty_every_step = (30, 30), 30
    v = judge(e)
    assert v.verdict == "masked" and "gradient honesty" in v.text and "another function" in v.text, v.text
    assert "CW-L2 on estimated gradients: not run" in v.remedy
    e.remedies["CW-L2 on estimated gradients"] = [1.6] * 30
    assert "CW-L2 on estimated gradients reached 30/30 targets (mean L2 1.60)" in judge(e).remedy
    e = _clean()
    e.randomized = (30, 30)
    assert "randomized" in judge(e).text and judge(e).verdict == "masked" and "EOT" in judge(e).remedy


def test_a_transfer_example_with_a_larger_distortion_is_not_masking():
    e = _clean()  # what the old rule got wrong: unbounded transfer examples beating a bounded attack
    e.l2_pairs["CW-L2 kappa=40 from the baseline"] = [6.0] * 30  # all hit, all 4x further than CW-L2's
    assert judge(e).verdict == "no sign of masking"


def test_a_miss_is_the_attack_until_escalated_and_evidence_once_another_attack_reaches_it():
    e = _clean()
    e.cw_l2 = [1.5] * 15 + [None] * 15
    e.cw_escalated, e.cw_settings = False, {"binary_search_steps": 2, "max_iterations": 10, "escalations": 0}
    e.l2_pairs["SimBA"] = [3.0] * 15 + [2.0] * 15  # SimBA reaches what CW-L2 missed, but CW-L2 never tried again
    v = judge(e)
    assert v.verdict == "inconclusive" and "escalations" in v.text and "15/30" in v.text, v.text
    e.cw_escalated = True  # attacked again with a larger budget and still missed: evidence about the gradient
    assert judge(e).verdict == "masked"
    e.l2_pairs = {"SimBA": [3.0] * 15 + [None] * 15}  # what no attack reaches is the attack's failure
    v = judge(e)
    assert v.verdict == "inconclusive" and "no attack reached" in v.text and "decision" in v.text, v.text


def test_an_unfinished_white_box_optimisation_is_an_attack_failure_not_masking():
    e = _clean()
    e.l2_pairs["SimBA"] = [1.0] * 30  # SimBA "beats" CW-L2 on every input...
    assert judge(e).verdict == "masked"
    e.cw_unconverged = (20, 30)  # ...but CW-L2 was cut with its loss still falling on 20 of 30
    v = judge(e)
    assert v.verdict == "inconclusive" and "white-box optimisation unfinished" in v.text and "20/30" in v.text, v.text
    assert "learning_rate" in v.text  # advice that can work: a rising loss needs a smaller step
    e.zero_gradients = (30, 30)  # a sign that needs no distance comparison still says masked
    assert judge(e).verdict == "masked"
    assert judge(_clean()).verdict == "no sign of masking"
    clean = _clean()
    clean.cw_unconverged = (0, 30)
    assert judge(clean).verdict == "no sign of masking"


def test_too_few_inputs_is_inconclusive_with_the_n_that_would_do():
    v = judge(_clean(n=6))
    assert v.verdict == "inconclusive" and "n too small" in v.text and "17 would decide" in v.text, v.text


def test_nothing_measured_is_never_masked():
    v = judge(Evidence("m", whitebox_success=0.0))  # a run without JSMA-F or any check
    assert v.verdict == "inconclusive" and "not measured" in v.text
    only_gradients = Evidence("m", whitebox_success=0.0, zero_gradients=(0, 40))
    assert judge(only_gradients).verdict == "inconclusive"


def test_the_remedy_says_once_what_the_models_own_backward_reached():
    """Two masked gradients, each with its remedy: what CW-L2 reached through the model's own backward is said
    once, after both (it was repeated after each)."""
    from engine.masking.checks import EVERY, remedy_text

    e = Evidence("m", cw_l2=[None, None, 1.0, None],
                 remedies={"CW-L2 on estimated gradients": [1.0, 2.0, 1.0, None], "CW-L2 with EOT": [1.0] * 4})
    text = remedy_text(e, [LOGITS, EVERY])
    assert text.count("own backward") == 1 and text.endswith("through the model's own backward CW-L2 reached 1/4 "
                                                               "targets (mean L2 1.00)"), text
    assert text.startswith("CW-L2 on estimated gradients reached 3/4") and "CW-L2 with EOT reached 4/4" in text


def _distilled_and_adversarial(tmp_path_factory):
    """A quick distilled pair at T = 100 and a small adversarially trained net, by the engine itself."""
    def train(folder):
        base = [*QUICK, "distillation.temperature=100"]
        for name, extra in (("distilled", []), ("adversarial", ["distillation.phases=['baseline']",
                                                                 "training.adversarial_epsilon=0.2",
                                                                 "training.adversarial_steps=3",
                                                                 "training.epochs=10"])):
            proc = cli("run", "digits", "--quiet", "--run-dir", str(folder / name), *with_sets(*base, *extra))
            assert proc.returncode == 0, proc.stderr

    return built_once(tmp_path_factory, "controls", train)


def _net(run_dir, phase="baseline"):
    from engine.checkpoints import unpack_state
    from engine.networks import build_network
    from engine.record.rundir import RunDir

    tensors, meta = RunDir.open(run_dir).load_tensors(phase)
    net = build_network("mnist")
    unpack_state(tensors, meta, net, None)
    return net.eval()


def _quick_controls(tmp_path_factory, n: int = 30):
    """The quick distilled pair (and its teacher) and the adversarially trained net, with the held-out inputs
    both the baseline and the student classify correctly, a target each, and the suite's reduced budgets."""
    from engine.data import load_dataset
    from engine.presets import load_preset

    folder = _distilled_and_adversarial(tmp_path_factory)
    models = {"baseline": _net(folder / "distilled"), "student": _net(folder / "distilled", "student"),
              "teacher": _net(folder / "distilled", "teacher"), "teacher_T": 100.0,
              "adversarial": _net(folder / "adversarial")}
    data = load_dataset(load_preset("digits", QUICK).data)
    with torch.no_grad():
        ok = (models["baseline"](data.x_test).argmax(1) == data.y_test) & \
             (models["student"](data.x_test).argmax(1) == data.y_test)
    x, y = data.x_test[ok][:n], data.y_test[ok][:n]
    targets = (y + 1 + torch.arange(len(y)) % 9) % 10
    cfg = MeasureConfig(cw=CWL2Config(learning_rate=0.05, binary_search_steps=5, max_iterations=200,
                                      initial_const=0.1, escalations=2),
                        simba=SimBAConfig(max_queries=1500), kappas=(40.0,), run_remedy=False)
    return models, x, y, targets, cfg, data.x_test


ORIGINAL_SEVEN = ("baseline", "low confidence", "adversarially trained", "distilled T=100", "saturated x1000",
                  "quantised input", "noisy input")


@pytest.mark.slow
@pytest.mark.parametrize("truth", ["not masked", "masked"])
def test_known_answer_controls_are_all_judged_right(tmp_path_factory, truth):
    # 30 inputs: at 20 a single input on which SimBA beats CW-L2 leaves the 95% interval (0-25%) across the
    # 20% threshold, and the adversarially trained net is "inconclusive (n too small)"; 1/30 is clear. The
    # suite judges the controls of the first matrix (the six added since are judged by the gradient-honesty
    # tests, the false-alarm test below and bench/verdict_controls.py: thirteen at once cost CI minutes), the
    # not-masked and the masked ones as two tests, which two workers run side by side
    models, x, y, targets, cfg, pool = _quick_controls(tmp_path_factory)
    names = ORIGINAL_SEVEN[:3] if truth == "not masked" else ORIGINAL_SEVEN[3:]
    rows = judge_controls(models, x, y, targets, cfg, 100.0, pool=pool, only=names)
    assert len(rows) == len(names)
    report = "\n".join(f"{c.name}: {v.verdict}: {v.text}" for c, v in rows)
    assert all(judged_right(c, v.verdict) for c, v in rows), report
    verdict = "masked" if truth == "masked" else "no sign of masking"
    other = "masked" if truth == "not masked" else "not masked"
    assert confusion([(c, v.verdict) for c, v in rows]) == {truth: {verdict: len(names)}, other: {}}
    for _c, v in rows:  # every verdict carries its evidence: each check with n and an interval
        assert v.checks and all(k.n > 0 and k.low is not None and k.evidence for k in v.checks)
    by_name = {c.name: v for c, v in rows}
    if truth == "masked":
        assert "CW-L2 on the logits reached" in by_name["distilled T=100"].remedy  # a saturated softmax's remedy
        assert any(k.name == "randomized decisions" and k.fired for k in by_name["noisy input"].checks)


@pytest.mark.slow
def test_the_false_alarm_controls_are_not_called_masked_and_a_lying_backward_is(tmp_path_factory):
    """Inference noise that moves no decision, and an honest model attacked by a badly tuned CW-L2 (an attack
    failure), must not read as masking; a backward borrowed from another network must, with the remedy
    (CW-L2 on gradients estimated from the forward alone) reaching what its own backward hides."""
    models, x, y, targets, cfg, pool = _quick_controls(tmp_path_factory, n=20)
    names = ("inference noise 1e-6", "badly tuned CW-L2", "straight-through backward")
    cfg = replace(cfg, run_remedy=True, remedy=RemedyConfig(samples=8))
    rows = {c.name: (c, v) for c, v in judge_controls(models, x, y, targets, cfg, 100.0, pool=pool, only=names)}
    for name in names[:2]:
        control, verdict = rows[name]
        assert verdict.verdict != "masked" and control.right(verdict.verdict), (name, verdict.text)
    noise = rows["inference noise 1e-6"][1]
    assert any(k.name == "randomized decisions" and k.status == "clear" for k in noise.checks), noise.text
    control, lying = rows["straight-through backward"]
    assert lying.verdict == "masked" and "gradient honesty" in lying.text, lying.text
    assert "CW-L2 on estimated gradients reached" in lying.remedy, lying.remedy
    reached = int(lying.remedy.split("CW-L2 on estimated gradients reached ")[1].split("/")[0])
    assert reached >= 0.75 * len(x), lying.remedy  # the model is as easy to fool as the net whose forward it is


FACTORY = '''
import torch
from torch import nn


def build(width: int = 8):
    return nn.Sequential(nn.Conv2d(1, width, 5, stride=2), nn.ReLU(), nn.Flatten(),
                         nn.Linear(width * 12 * 12, 10))


def wrong_shape():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 3))
'''
ATTACK = ["attack.enabled=true", "attack.samples=10", "attack.outputs=['softmax', 'logits']",
          "attack.methods=['jsma', 'cw_l2']", "attack.models=['baseline']", "attack.checks=['transfer', 'blackbox']",
          "attack.cw_l2.binary_search_steps=4", "attack.cw_l2.max_iterations=100", "attack.cw_l2.learning_rate=0.05",
          "attack.cw_l2.initial_const=0.1",
          "attack.simba_queries=500",
          # CW-L2's misses not escalated (up to 2 x 6 binary steps of 1,000 iterations each, run twice by the test:
          # in the run and through the library): these tests check where the evidence comes from, not its budget;
          # an unescalated miss reads "inconclusive", never "masked"
          "attack.cw_l2.escalations=0"]


def _library_evidence(tmp_path, run_dir) -> dict:
    """The run's baseline judged again through the library path (engine.masking.measure) on the same model,
    inputs, targets, budget and transfer source, every attack run afresh in this process."""
    from dataclasses import asdict

    from engine.checkpoints import unpack_state
    from engine.data import load_dataset
    from engine.masking.from_run import measure_config
    from engine.masking.measure import MemoryResults, Source, Subject, measure_evidence
    from engine.model_factory import build_model, build_surrogate
    from engine.presets import preset_from_toml
    from engine.record.rundir import RunDir
    from engine.sweeps.verdicts import check_set

    sys.path.insert(0, str(tmp_path))  # the researcher's module, as the engine process imported it
    try:
        rd = RunDir.open(run_dir)
        preset = preset_from_toml(rd.read_preset_toml())
        nets = {}
        for phase, build in (("baseline", build_model), ("surrogate", build_surrogate)):
            nets[phase] = build(preset, load_weights=False)
            unpack_state(*rd.load_tensors(phase), nets[phase], None)
            nets[phase].eval()
        found = check_set(run_dir, "baseline", preset)
        inputs, labels, targets, x = found.inputs, found.labels, found.targets, found.x
        subject = Subject("baseline", nets["baseline"], x, torch.tensor(targets), inputs, MemoryResults(),
                          labels=torch.tensor(labels), pool=load_dataset(preset.data).x_test)
        evidence = measure_evidence(subject, measure_config(preset.attack),
                                    Source("the surrogate", nets["surrogate"], MemoryResults()))
    finally:
        sys.path.remove(str(tmp_path))
    return json.loads(json.dumps(asdict(evidence)))


def _own_model_process(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                          timeout=600)


@pytest.mark.slow
def test_a_model_given_by_import_path_is_trained_attacked_and_judged(tmp_path):
    (tmp_path / "mymodels.py").write_text(FACTORY)
    sets = with_sets(*QUICK, "training.epochs=3", "distillation.phases=['baseline']",
                     "network.factory='mymodels:build'", "network.factory_args={width=6}", *ATTACK)
    proc = _own_model_process(tmp_path, "run", "digits", "--quiet", "--run-dir", "own", *sets)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "own" / "summary.json").read_text())
    assert summary["accuracy"]["baseline"] > 0.5 and summary["verdict"]["baseline"]["checks"]
    # the researcher's model gets transfer evidence: a Table I surrogate trained on the same data, its examples
    evidence = summary["verdict"]["baseline"]["evidence"]
    assert (tmp_path / "own" / "checkpoints" / "surrogate.safetensors").exists()
    assert set(evidence["transfer"]) == {"CW-L2 kappa=0 from the surrogate", "CW-L2 kappa=40 from the surrogate"}
    names = [c["name"] for c in summary["verdict"]["baseline"]["checks"]]
    assert "transfer beats white-box: CW-L2 kappa=0 from the surrogate" in names, names
    assert "JSMA-F transfer from the surrogate beats JSMA-F" in names and "gradient honesty" in names, names
    out = _own_model_process(tmp_path, "verdict", "own", "--json")
    assert out.returncode == 0, out.stderr
    rejudged = json.loads(out.stdout)["verdicts"]["baseline"]
    assert rejudged["verdict"] in ("no sign of masking", "inconclusive")
    assert rejudged["evidence"] == evidence  # `verdict` reads the same evidence back from the run's files
    assert _library_evidence(tmp_path, tmp_path / "own") == evidence  # and a library call measures it again
    bad = _own_model_process(tmp_path, "run", "digits", "--run-dir", "bad",
                             *with_sets(*QUICK, "network.factory='mymodels:wrong_shape'"))
    assert bad.returncode == 2 and "expected (2, 10) logits" in bad.stderr and not (tmp_path / "bad").exists(), \
        bad.stderr
    missing = _own_model_process(tmp_path, "run", "digits", "--run-dir", "bad",
                                 *with_sets(*QUICK, "network.factory='nowhere.models:build'"))
    assert missing.returncode == 2 and "does not import" in missing.stderr and len(missing.stderr.splitlines()) == 1


@pytest.mark.slow
def test_weights_loaded_into_a_wrapper_are_judged_masked_and_the_verdict_command_scripts(trained_run, tmp_path):
    """The saturated control through the same mechanism a researcher uses: a factory and a weights file
    (the shared run's baseline, wrapped), loaded, not trained, attacked, judged "masked"."""
    from safetensors.torch import save_file

    from engine.record.rundir import RunDir

    tensors, _meta = RunDir.open(trained_run.run_dir).load_tensors("baseline")
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    weights = tmp_path / "saturated.safetensors"
    save_file(wrapped_weights(state), str(weights))
    sets = with_sets(*QUICK, "distillation.phases=['baseline']", "network.factory='engine.masking.controls:saturated'",
                     f"network.weights='{weights}'", *ATTACK)
    proc = cli("run", "digits", "--quiet", "--run-dir", str(tmp_path / "sat"), *sets)
    assert proc.returncode == 0, proc.stderr[-2000:]
    verdict = cli("verdict", str(tmp_path / "sat"), "--json")
    got = json.loads(verdict.stdout)["verdicts"]["baseline"]
    assert got["verdict"] == "masked" and "vanishing gradients" in got["text"], got["text"]
    assert cli("verdict", str(tmp_path / "sat"), "--fail-on", "masked").returncode == 1
    assert cli("verdict", str(tmp_path / "sat"), "--fail-on", "inconclusive").returncode == 0
    events = (tmp_path / "sat" / "events.jsonl").read_text()
    assert "weights loaded from" in events and '"type": "epoch"' not in events  # loaded, never trained
    wrong = tmp_path / "wrong.safetensors"
    save_file(state, str(wrong))  # the Table I net's keys, without the wrapper's "net." prefix
    bad = cli("run", "digits", "--run-dir", str(tmp_path / "bad"),
              *with_sets(*QUICK, "distillation.phases=['baseline']",
                         "network.factory='engine.masking.controls:saturated'", f"network.weights='{wrong}'"))
    assert bad.returncode == 2 and "do not fit the model" in bad.stderr and not (tmp_path / "bad").exists()


def test_verdict_command_on_a_run_without_attacks_and_on_nothing(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, run, ignore=shutil.ignore_patterns("engine.lock"))
    proc = cli("verdict", str(run), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["verdicts"] == {}, proc.stderr
    bad = cli("verdict", str(tmp_path / "nothing"))
    assert bad.returncode == 2 and "neither sweep.json nor summary.json" in bad.stderr


@pytest.mark.slow
def test_results_of_another_checkpoint_are_left_out_and_named_until_measured_again(trained_run, tmp_path):
    """The swap that found it: a run's student checkpoint replaced after its attacks. The verdict must not
    judge the old student's JSMA-F beside the new model, and must say what to measure again."""
    run = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, run, ignore=shutil.ignore_patterns("engine.lock"))
    attack = cli("attack", str(run), "--model", "student", "--output", "softmax", "--output", "logits",
                 "--method", "jsma", "--samples", "10", "--quiet")
    assert attack.returncode == 0, attack.stderr[-2000:]
    before = json.loads(cli("verdict", str(run), "--json").stdout)["verdicts"]["student"]
    assert before["evidence"]["jsma_pairs"] and "another checkpoint" not in before["text"]
    shutil.copy(run / "checkpoints" / "teacher.safetensors", run / "checkpoints" / "student.safetensors")
    after = json.loads(cli("verdict", str(run), "--json").stdout)["verdicts"]["student"]
    assert "measured on another checkpoint of student" in after["text"], after["text"]
    assert "student-softmax.json" in after["text"] and "student-logits.json" in after["text"], after["text"]
    assert f"defdistill-engine attack {run} --model student --checks" in after["text"]
    assert not after["evidence"]["jsma_pairs"]  # the old student's attacks are not combined with the new one
    assert cli("report", str(run)).returncode == 0  # the report marks them too, and says how to re-measure
    report = (run / "report.md").read_text()
    assert "(stale)" in report and "measured on another checkpoint of student" in report, report
    assert f"`defdistill-engine attack {run} --model student`" in report
    again = cli("attack", str(run), "--model", "student", "--output", "softmax", "--output", "logits",
                "--method", "jsma", "--samples", "10", "--quiet")
    assert again.returncode == 0, again.stderr[-2000:]
    fresh = json.loads(cli("verdict", str(run), "--json").stdout)["verdicts"]["student"]
    assert "another checkpoint" not in fresh["text"] and fresh["evidence"]["jsma_pairs"], fresh["text"]
    assert cli("report", str(run)).returncode == 0 and "stale" not in (run / "report.md").read_text().lower()
