"""report.md for a run or a sweep: our setup and measurements beside the paper's numbers."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from engine.deployment import label as temperature_label
from engine.errors import RunDirError
from engine.paper import CW, GRADIENT_REDUCTION, HEADLINE, SUCCESS_VS_T, paper_key
from engine.record.events import AttackRow, GradientSupport
from engine.record.rundir import RunDir, atomic_write_bytes, atomic_write_json, preset_and_meta, read_json
from engine.reports.cw_report import run_section, sweep_section
from engine.reports.fidelity import figure as fidelity_figure
from engine.reports.fidelity import section as fidelity_section
from engine.reports.figures import write_sweep_figures
from engine.reports.verdict_report import transfer_lines, verdict_section
from engine.sweeps.plan import SWEEP_FILE
from engine.sweeps.result import SweepEntry, SweepResult

OUTPUTS = ("softmax", "logits", "softmax_T")


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _paper(v: float | int | None, prefix: str = "") -> str:
    return "–" if v is None else f"{prefix}{v}%"


def _setup(preset: dict[str, Any], meta: dict[str, Any], data_note: str, seconds: float, quick: bool,
           provenance: dict[str, list[str]] | None = None) -> list[str]:
    tr, att = preset["training"], preset["attack"]
    lines = [
        "## Setup",
        f"- preset `{preset['name']}`" + (" — **quick profile** (fewer epochs and attack samples than the "
                                          "paper; numbers are indicative)" if quick else ""),
        f"- data: {data_note}",
        f"- network: Table I `{preset['network']['arch']}` CNN, dropout {preset['network']['dropout']}",
        f"- training: {tr['optimizer']} lr {tr['lr']} momentum {tr['momentum']}, batch {tr['batch_size']}, "
        f"{tr['epochs']} epochs, lr x{tr['lr_decay']} / momentum x{tr['momentum_decay']} every {tr['decay_every']} "
        f"epochs, loss scaled by {tr['loss_scale']} (so high T converges), grad-norm clip {tr['grad_clip']}"
        + (f", lr warm-up over {tr['warmup_epochs']} epochs" if tr.get("warmup_epochs") else ""),
        f"- attack: JSMA targeted, theta {att['theta']}, Upsilon {100 * att['upsilon']:.1f}%, {att['samples']} "
        f"held-out inputs x 9 targets per model and output; when no pair qualifies: `{att['no_pair']}`",
        f"- attacks run: {', '.join(att.get('methods', ['jsma']))}"
        + (f"; C&W cases {', '.join(att.get('cw_cases', []))}" if len(att.get("methods", [])) > 1 else ""),
        f"- seed {preset['seed']}, device {meta.get('device', '?')}, torch {meta.get('torch', '?')}, "
        f"defdistill commit {str(meta.get('git_commit') or '?')[:10]}, time taken {seconds / 60:.1f} min",
    ]
    mixed = {k: v for k, v in (provenance or {}).items() if len(v) > 1}
    if mixed:  # a resumed sweep whose runs were made by different code: say which
        lines.append("- the runs were made with " + "; ".join(
            f"{'defdistill commits' if k == 'commits' else 'torch'} {', '.join(v)}" for k, v in mixed.items()))
    return lines


def _seeded(label: str, entry: SweepEntry, seeds: list[int] | None) -> str:
    """A verdict row's label: with seeds its numbers are the first seed's, and every seed's verdict is named."""
    if not seeds or len(seeds) < 2:
        return label
    return f"{label} (seed {seeds[0]}; by seed: {', '.join(entry.verdicts_by_seed)})"


def read_sweep(sweep_dir: Path) -> SweepResult:
    path = sweep_dir / SWEEP_FILE
    return SweepResult.from_json(_required(path, "run the same `defdistill-engine sweep` again to rebuild it"), path)


def sweep_report(sweep_dir: Path, r: SweepResult) -> str:
    if r.setup:  # the baseline's resolved preset and meta.json, kept in sweep.json
        preset, meta = r.setup["preset"], r.setup["meta"]
    else:
        preset, meta = preset_and_meta(sweep_dir / r.baseline.first_run_dir)
    if not r.temperatures:
        return _baseline_only(r, preset, meta)
    key = paper_key(r.dataset)
    head = HEADLINE.get(key or "", {})
    temps = r.temperatures
    top = temperature_label(r.top)
    b, s = r.baseline, r.at(r.top)
    lines = [f"# defdistill report: {r.dataset} temperature sweep", ""]
    lines += _setup(preset, meta, r.data_note, r.seconds, r.quick, r.setup.get("provenance"))
    lines += ["", "## Paper vs measured", ""]
    if key is None:
        lines += [f"The paper has no {r.dataset} results; our numbers stand alone.", ""]
    weak = [name for name, acc in [("no distillation", b.accuracy)]
            + [(f"T={temperature_label(t)}", r.at(t).accuracy) for t in temps] if acc < 0.5]
    if weak:
        lines += [f"**Warning: held-out accuracy below 50% for {', '.join(weak)}: training did not converge there, "
                  "and attack numbers on such a model say little.** Train longer (training.epochs).", ""]
    note = f" ({r.data_note})" if "not the paper" in r.data_note else ""
    lines += ["| quantity | paper | measured |", "|---|---|---|",
              f"| JSMA-F success, no distillation | {_paper(head.get('success_baseline'))} | "
              f"{_pct(b.success_rate.get('softmax'))}{note} |",
              f"| JSMA-F success, distilled T={top} | "
              f"{_paper(head.get('success_distilled_T100') if top == '100' else None)} | "
              f"{_pct(s.success_rate.get('softmax'))} |",
              f"| accuracy, no distillation | {_paper(head.get('accuracy_baseline'), '~')} | {_pct(b.accuracy)} |",
              f"| accuracy, distilled T={top} | {_paper(head.get('accuracy_distilled'), '~')} | "
              f"{_pct(s.accuracy)} |"]
    if b.rho_adv and s.rho_adv:
        inc = 100 * (s.rho_adv / b.rho_adv - 1)
        bound = " (lower bound: some inputs no target reached)" if s.rho_adv_is_lower_bound else ""
        lines.append(f"| rho_adv change after distillation | {_paper(head.get('rho_adv_increase_pct'), '+')} | "
                     f"{inc:+.0f}%{bound} |")
    ga_b, ga_s = b.gradient_amplitude or {}, s.gradient_amplitude or {}
    if ga_b and ga_s:
        red = ("all exactly 0 in float32" if ga_s.get("mean") == 0 else f"{ga_b['mean'] / ga_s['mean']:.1e}x smaller")
        lines.append(f"| gradient reduction | {GRADIENT_REDUCTION} | {red} "
                     f"({100 * ga_s['zero_share']:.0f}% of inputs with an all-zero gradient) |")
    support = any(e.gradient_pixel_share is not None for e in [b, *r.by_temperature.values()])
    lines += ["", "### Success vs temperature (JSMA-F, deployed softmax)", "",
              "| T | paper (" + (key or "–").upper() + ") | measured softmax | logits | softmax_T | accuracy |"
              + (" input gradient ≠ 0 | dead units |" if support else ""),
              "|---|---|---|---|---|---|" + ("---|---|" if support else "")]
    ref = SUCCESS_VS_T.get(key or "", {})
    for t in temps:
        e = r.at(t)
        p = ref.get(int(t)) if float(t).is_integer() else None
        lines.append(f"| {temperature_label(t)} | {'–' if p is None else f'{p}%'} | "
                     f"{_pct(e.success_rate.get('softmax'))} | {_pct(e.success_rate.get('logits'))} | "
                     f"{_pct(e.success_rate.get('softmax_T'))} | {_pct(e.accuracy)} |"
                     + (f" {_pct(e.gradient_pixel_share)} | {_pct(e.dead_unit_share)} |" if support else ""))
    if support:  # sweeps made before the engine measured it have no such column
        lines += ["", "Input gradient ≠ 0: the share of input pixels on which the gradient of the predicted logit "
                  "is non-zero (mean over held-out inputs); dead units: ReLU units zero on every one of them. A small "
                  "share stops white-box attacks without any saturation (baseline: "
                  f"{_pct(b.gradient_pixel_share)} of pixels, {_pct(b.dead_unit_share)} dead units)."]
    lines += ["", "## Masking at a glance (Carlini & Wagner)", "",
              f"On the distilled model (T={top}): JSMA-F (softmax at T=1) {_pct(s.success_rate.get('softmax'))}, "
              f"JSMA-Z (logits) {_pct(s.success_rate.get('logits'))}, softmax(z/T) "
              f"{_pct(s.success_rate.get('softmax_T'))}. "
              + _ended_sentence(s) + _cw_sentence(s), "", f"C&W reported: {CW}.", ""]
    other = read_json(sweep_dir / COMPARE_FILE, COMPARE_FIX)
    compare = None if other is None else SweepResult.from_json(other, sweep_dir / COMPARE_FILE, COMPARE_FIX)
    fidelity = fidelity_section(r, compare)
    if fidelity:
        fidelity_figure(r, sweep_dir / "fidelity.png", compare)
    lines += fidelity
    lines += verdict_section([(_seeded("no distillation", b, r.seeds), b.verdict)]
                             + [(_seeded(f"T={temperature_label(t)}", r.at(t), r.seeds), r.at(t).verdict)
                                for t in temps])
    lines += transfer_lines(s.transfer or (s.verdict or {}).get("evidence", {}).get("transfer"))
    lines += sweep_section(r)
    lines += ["## Figures", "", "![success vs temperature](success_vs_temperature.png)", "",
              "![accuracy vs temperature](accuracy_vs_temperature.png)", "",
              "![gradient amplitude](gradient_amplitude.png)", "", "![adversarial examples](adversarial_examples.png)",
              ""]
    if r.seeds:
        lines += ["## Seeds", "", f"Every number above is the mean over seeds {r.seeds}; the spread (std) per "
                  "temperature is in sweep.json and drawn as error bars.", ""]
    lines += _failed_lines(r)
    if r.ray:
        nodes = sorted({t["node_id"] for t in r.ray["tasks"].values()})
        lines += ["## Where it ran", "", f"Ray ({r.ray['address']}): {len(r.ray['tasks'])} tasks on "
                  f"{len(nodes)} node(s): " + ", ".join(n[:12] for n in nodes), ""]
    if note:
        lines += ["## Where our data differ from the paper's", "", f"- {r.data_note}."]
    if r.quick:
        lines += [f"- quick profile: {', '.join(r.overrides)} (the paper: 50 epochs, 100 inputs x 9 targets)."]
    return "\n".join(lines) + "\n"


def _baseline_only(r: SweepResult, preset: dict[str, Any], meta: dict[str, Any]) -> str:
    """A sweep none of whose distilled runs finished (each failed or was refused): its baseline and why."""
    b = r.baseline
    lines = [f"# defdistill report: {r.dataset} temperature sweep", "",
             *_setup(preset, meta, r.data_note, r.seconds, r.quick, r.setup.get("provenance")), "",
             "## No distilled run finished", "",
             f"No distillation: JSMA-F success {_pct(b.success_rate.get('softmax'))}, JSMA on the logits "
             f"{_pct(b.success_rate.get('logits'))}, held-out accuracy {_pct(b.accuracy)}.", "", *_failed_lines(r)]
    return "\n".join(lines) + "\n"


def _failed_lines(r: SweepResult) -> list[str]:
    if not r.failed:
        return []
    return ["## Runs that failed", "", *[f"- `{k}`: {v}" for k, v in r.failed.items()], ""]


def _cw_sentence(entry: SweepEntry) -> str:
    rate = entry.success_rate.get("cw_l2")
    if rate is None:
        return ""
    d = entry.distance("cw_l2", "l2")
    return (f" Carlini & Wagner's L2 attack on its logits succeeds {_pct(rate)}"
            + (f" with a mean L2 distance of {d:.2f}" if d is not None else "") + ".")


def _ended_sentence(entry: SweepEntry) -> str:
    """What the measurements say about masking; the verdict follows the numbers, never assumed."""
    ended = entry.ended.get("softmax")
    if not ended:
        return ""
    total = sum(ended.values()) or 1
    no_pair = ended.get("no_pair", 0) / total
    rates = entry.success_rate
    f, best = rates.get("softmax", 0.0), max(rates.get("softmax_T", 0.0), rates.get("logits", 0.0))
    text = (f"Of the JSMA-F attacks on it, {100 * no_pair:.0f}% ended because no pair of features had the gradient "
            f"signs the saliency map needs, {100 * ended.get('budget', 0) / total:.0f}% by spending the budget. ")
    if no_pair > 0.5 and best - f > 0.3:
        return text + ("The same model falls to the other attacked outputs: its robustness to JSMA-F is masked "
                       "gradients (a saturated float32 softmax), not robustness.")
    if best - f > 0.3:
        return text + "Other attacked outputs succeed far more often: JSMA-F underestimates this model's weakness."
    return text + "The other attacked outputs do not succeed much more often either."


def run_report(run_dir: Path) -> str:
    summary = RunDir(run_dir).read_summary()
    if summary is None:
        raise RunDirError(f"{run_dir} has no summary.json: the run has not finished; `defdistill-engine resume "
                          f"{run_dir}` first")
    preset, meta = preset_and_meta(run_dir)
    key = paper_key(summary.dataset)
    head = HEADLINE.get(key or "", {})
    lines = [f"# defdistill report: {summary.dataset} run at T={temperature_label(summary.temperature)}", ""]
    lines += _setup(preset, meta, summary.data_note, summary.seconds, False)
    lines += ["", "## Accuracy (held-out, deployed T=1)", "", "| model | measured | paper |", "|---|---|---|"]
    for m, acc in summary.accuracy.items():
        paper = head.get("accuracy_baseline" if m == "baseline" else "accuracy_distilled")
        lines.append(f"| {m} | {_pct(acc)} | {'–' if paper is None or m == 'teacher' else f'~{paper}%'} |")
    attacks = summary.attacks
    stale = stale_attacks(run_dir, attacks)
    if attacks:
        lines += ["", "## JSMA success rate", "", "| model | " + " | ".join(OUTPUTS) + " |", "|---" * 4 + "|"]
        for m in ("baseline", "teacher", "student"):
            if any(f"{m}-{o}" in attacks for o in OUTPUTS):
                lines.append(f"| {m} | " + " | ".join(
                    _pct(row.success_rate if (row := attacks.get(f"{m}-{o}")) else None)
                    + (" (stale)" if f"{m}-{o}" in stale.get(m, []) else "") for o in OUTPUTS) + " |")
        for m, keys in stale.items():
            lines += ["", f"**Stale:** measured on another checkpoint of {m} (its weights changed since): "
                      f"{', '.join(keys)}; they describe the old model, not this one. Measure them again with "
                      f"`defdistill-engine attack {run_dir} --model {m}`."]
        if head:
            lines += ["", f"Paper ({key.upper()}): {head['success_baseline']}% without distillation, "
                      f"{head['success_distilled_T100']}% at T=100 (JSMA-F). {CW}."]
    if summary.soft_label_temperature is not None:
        lines += ["", f"The student's soft labels were made at T={temperature_label(summary.soft_label_temperature)}, "
                  "the T it trained at."]
    lines += run_section(run_dir, summary.dataset)
    verdicts = {m: asdict(v) for m, v in summary.verdict.items()}  # the serialised form sweep.json holds too
    if verdicts:
        lines += [""] + verdict_section(list(verdicts.items())) + transfer_lines(
            (verdicts.get("student") or {}).get("evidence", {}).get("transfer"))
    lines += _support_lines(summary.gradient_support)
    lines += ["", f"Distillation evidence: student mean |logit| {summary.mean_abs_logit.get('student', 0):.1f} vs "
              f"baseline {summary.mean_abs_logit.get('baseline', 0):.1f}; "
              f"{_pct(summary.saturated_share)} of held-out inputs have a T=1 softmax of exactly 1.0.", ""]
    return "\n".join(lines) + "\n"


def stale_attacks(run_dir: Path, attacks: dict[str, AttackRow]) -> dict[str, list[str]]:
    """Per model, the attack results (summary keys) measured on another checkpoint than the one the model
    has now: a report never shows them as this model's without saying so."""
    from engine.masking.run_results import Freshness

    fresh: dict[str, Freshness] = {}
    out: dict[str, list[str]] = {}
    for key, row in attacks.items():
        model = key.split("-", 1)[0]
        check = fresh.setdefault(model, Freshness(run_dir, model))
        if not check.made_on_current(row.checkpoint, key):
            out.setdefault(model, []).append(key)
    return out


def _support_lines(support: dict[str, GradientSupport]) -> list[str]:
    """Each model's gradient support: where its input gradient is non-zero, and its dead units per layer."""
    if not support:
        return []
    lines = ["", "## Gradient support", "",
             "| model | input gradient ≠ 0 (mean, min) | dead units | dead per ReLU layer |", "|---|---|---|---|"]
    for m, s in support.items():
        layers = ", ".join(f"{k} {100 * v:.0f}%" for k, v in s.dead_units.items()) or "– (no nn.ReLU)"
        lines.append(f"| {m} | {_pct(s.pixel_share)}, {_pct(s.pixel_share_min)} | "
                     f"{_pct(s.dead_unit_share)} | {layers} |")
    n = next(iter(support.values())).n_inputs
    lines += ["", f"Over {n} held-out inputs: the share of input pixels on which the gradient of the predicted logit "
              "is non-zero, and the ReLU units that are zero on every one of them. A gradient on a few percent of "
              "the pixels stops every white-box attack without a saturated softmax."]
    return lines


def _required(path: Path, fix: str) -> Any:
    data = read_json(path, fix)
    if data is None:
        raise RunDirError(f"{path} is missing; {fix}")
    return data


COMPARE_FILE = "compare-sweep.json"  # another sweep's sweep.json (e.g. the quick profile), for the fidelity section
COMPARE_FIX = "delete it, or pass `report --compare` again"


def write_report(path: Path, compare: Path | None = None) -> Path:
    path = Path(path)
    if compare is not None:
        other = read_json(Path(compare) / SWEEP_FILE, "give a finished sweep directory to --compare")
        if other is None:
            raise RunDirError(f"{compare} holds no sweep.json; give a finished sweep directory to --compare")
        atomic_write_json(path / COMPARE_FILE, other)
    try:
        if (path / SWEEP_FILE).exists():
            result = read_sweep(path)  # read and checked once, for the figures and the text
            write_sweep_figures(path, result)
            text = sweep_report(path, result)
        elif (path / "summary.json").exists():
            text = run_report(path)
        else:
            raise RunDirError(f"{path} holds neither sweep.json nor summary.json; give a finished run or sweep "
                              "directory")
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # every input was read as JSON but one has fields of the wrong kind: a damaged result file
        raise RunDirError(f"a result file in {path} has the wrong shape ({type(exc).__name__}: {str(exc)[:80]}); "
                          "re-run the command that wrote it (run, attack or sweep) or restore it") from None
    out = path / "report.md"
    atomic_write_bytes(out, text.encode())
    return out
