"""Deterministic event streams for dashboard snapshots: a run directory written by hand.

The numbers follow the shape of a real digits run (decaying loss, rising accuracy, a saturated
student) but are fixed, so screenshots are the same on every machine.
"""

from __future__ import annotations

import math
from pathlib import Path

from engine.data import load_digits_28
from engine.presets import load_preset
from engine.record.events import (
    AttackFinished,
    AttackProgress,
    AttackStarted,
    Batch,
    Checkpoint,
    CheckRow,
    CWCase,
    CWFinished,
    Epoch,
    Event,
    Example,
    Finished,
    GradientSupport,
    Paused,
    Payload,
    PhaseFinished,
    PhaseStarted,
    Probes,
    RunStarted,
    RunSummary,
    SoftLabels,
    TemperatureChanged,
    VerdictMade,
)
from engine.sessions.telemetry import Sample

T0 = 1_700_000_000.0
NO_GPU = Sample(False, "CPU / RAM (this process)",
                {"cpu": "187% of 2 cores", "rss": "912 MiB", "ram": "1.3 / 23.5 GiB (6%)"},
                note="no NVIDIA GPU or NVML here: CPU/RAM shown")


def _probe_logits(labels: list[int], scale: float, k: int) -> list[list[float]]:
    out = []
    for i, y in enumerate(labels):
        row = [((c * 7 + i * 3 + k) % 10) / 10.0 * scale for c in range(10)]
        row[y] += 4.0 * scale
        out.append(row)
    return out


def write_run(path: Path, stage: str, shown_dir: str | None = None) -> Path:
    """stage: training | paused | attacking | finished. `shown_dir`: the run directory the events
    name (the status line shows it), so screenshots do not depend on where the files are."""
    preset = load_preset("digits", ["training.epochs=6"])
    path.mkdir(parents=True, exist_ok=True)
    (path / "preset.toml").write_text(preset.to_toml())
    x, y = load_digits_28()
    labels = [int(v) for v in y[:8]]
    events = []
    t = T0

    def add(payload: Payload) -> None:
        # the very classes the engine emits: a scripted stream cannot drift from the real one
        nonlocal t
        t += 0.5
        events.append(Event(len(events) + 1, t, payload))

    add(RunStarted(preset="digits", dataset="digits", data_note="", device="cpu (2 threads)",
        phases=["baseline", "teacher", "student"], temperature=100.0, epochs=6, run_dir=shown_dir or str(path),
        train_size=1437, test_size=360))
    add(Probes(labels=labels, side=28,
        images=[[round(v, 3) for v in img.flatten().tolist()] for img in x[:8]]))
    phases = [("baseline", 1.0, 1.0), ("teacher", 100.0, 60.0), ("student", 100.0, 80.0)]
    upto = {"training": (1, 3), "paused": (1, 4), "attacking": (2, 6), "finished": (2, 6)}[stage]
    for pi, (phase, temp, scale) in enumerate(phases[: upto[0] + 1]):
        last_epoch = 6 if pi < upto[0] else upto[1]
        add(PhaseStarted(phase=phase, temperature=temp, epochs=6, start_epoch=0, start_batch=0,
            train_size=1437))
        for ep in range(last_epoch):
            for b in range(12):
                loss = 2.3 * math.exp(-(ep * 12 + b) / 14.0) + 0.05 * ((b * 7) % 3)
                add(Batch(phase=phase, epoch=ep, batch=b, batches=12, loss=loss, temperature=temp))
            add(Epoch(phase=phase, epoch=ep, epochs=6, train_loss=2.3 * math.exp(-ep / 1.2),
                val_loss=2.0 * math.exp(-ep), val_accuracy=min(0.99, 0.4 + 0.12 * ep), lr=0.1, temperature=temp,
                seconds=1.0, probe_logits=_probe_logits(labels, scale * (ep + 1) / 6, ep)))
            if phase == "teacher" and ep == 1:
                add(TemperatureChanged(phase="teacher", old=100.0,
                    temperature=100.0, applies="next batch"))
        if last_epoch == 6:
            add(Checkpoint(phase=phase, epoch=6, batch=0, complete=True,
                path=f"checkpoints/{phase}.safetensors"))
            add(PhaseFinished(phase=phase, seconds=7.0, val_accuracy=0.98, temperature=temp))
            if phase == "teacher":
                add(SoftLabels(temperature=100.0, n=1437, mean_max=0.995,
                    agreement_with_hard_labels=0.995))
    if stage == "paused":
        add(Paused(phase="teacher"))
    if stage in ("attacking", "finished"):
        results = {"baseline-softmax": (245, 270), "baseline-logits": (230, 270), "baseline-softmax_T": (245, 270),
                   "student-softmax": (0, 270), "student-logits": (237, 270), "student-softmax_T": (245, 270)}
        keys = list(results)
        done = keys if stage == "finished" else keys[:4]
        for key in done:
            model, out = key.split("-", 1)
            won, n = results[key]
            add(AttackStarted(key=key, model=model, output=out, n_attacks=n, samples=30,
                output_temperature=100.0 if (model == "student" and out == "softmax_T") else 1.0))
            add(AttackProgress(key=key, n_attacks=n, attempted=n, succeeded=won, attacks_per_second=80.0))
            matrix = {"attempts": [[0 if s == tt else 3 for tt in range(10)] for s in range(10)],
                      # every pair a source can reach at 100% where the model falls at all: the widest cells
                      "successes": [[0 if s == tt else 3 if won and (s + tt) % 4 == 0 else (3 * won) // n
                                     for tt in range(10)] for s in range(10)]}
            ex = [Example(label=labels[i], target=(labels[i] + 1) % 10, success=won > 0,
                          prediction=(labels[i] + 1) % 10 if won else labels[i], side=28,
                          x=[round(v, 3) for v in x[i].flatten().tolist()],
                          x_adv=[min(1.0, round(v + (0.9 if (j % 29 == 0 and won) else 0), 3))
                                 for j, v in enumerate(x[i].flatten().tolist())]) for i in range(2)]
            add(AttackFinished(key=key, model=model, output=out, success_rate=won / n, n_attacks=n, samples=30,
                               output_temperature=100.0 if (model == "student" and out == "softmax_T") else 1.0,
                               n_succeeded=won, mean_features_changed=0.05,
                               ended={"target": won, "budget": 0, "no_pair": n - won, "domain": 0},
                               no_pair_rule="stop", seconds=3.0, attacks_per_second=80.0, matrix=matrix, examples=ex))
        if stage == "attacking":
            key = keys[4]
            add(AttackStarted(key=key, model="student", output="logits", n_attacks=270, samples=30,
                output_temperature=1.0))
            add(AttackProgress(key=key, n_attacks=270, attempted=120, succeeded=101,
                attacks_per_second=37.0))
        else:
            for model, l2 in (("baseline", 1.87), ("student", 1.61)):  # C&W's L2 attack on the logits: 30/30
                ex = [Example(label=labels[i], target=(labels[i] + 3) % 10, success=True,
                              prediction=(labels[i] + 3) % 10, side=28,
                              x=[round(v, 3) for v in x[i].flatten().tolist()],
                              x_adv=[round(min(1.0, v + (0.3 if j % 7 == 0 else 0)), 3)
                                     for j, v in enumerate(x[i].flatten().tolist())]) for i in range(2)]
                add(AttackStarted(key=f"{model}-cw_l2", model=model, output="logits", n_attacks=30, samples=30,
                                  output_temperature=None, method="cw_l2"))
                add(CWFinished(key=f"{model}-cw_l2", model=model, method="cw_l2",
                               model_temperature=1.0 if model == "baseline" else 100.0,
                               cases={"average": CWCase(success_rate=1.0, inputs=30, succeeded=30, mean_l0=380.0,
                                                        mean_l2=l2, mean_linf=0.39)},
                               n_attacks=30, n_succeeded=30, samples=30, mean_iterations=1250.0, median_const=0.5,
                               seconds=20.0, attacks_per_second=1.5,
                               settings={"learning_rate": 0.05, "binary_search_steps": 6, "max_iterations": 500},
                               reduced="Adam lr 0.05 (reference 0.01)", examples=ex))
            for model, verdict, fired in (("baseline", "no sign of masking", False), ("student", "masked", True)):
                rows = [CheckRow(name="vanishing gradients", fired=fired, value=1.0 if fired else 0.0,
                                 threshold=">= 10%", evidence=f"{100 if fired else 0}% of inputs have an exactly zero "
                                 "input gradient"),
                        CheckRow(name="transfer beats white-box", fired=fired, value=0.9 if fired else 0.0,
                                 threshold=">= 10 points", evidence="CW-L2 kappa=40 from the baseline 90.0% vs JSMA-F "
                                 + ("0.0%" if fired else "90.7%"))]
                # gradient honesty as the verdict measures it: both backwards describe their forward functions
                honesty = {"honesty": [0, 30], "honesty_every_step": 0,
                           "honesty_errors": {"1e-02": 0.009 if fired else 0.005, "1e-06": 6e-09}}
                add(VerdictMade(model=model, verdict=verdict, checks=rows, evidence=honesty,
                                text=("robustness to JSMA-F (0.0% success) is masked gradients: 2 of 2 checks fired"
                                      if fired else "no sign of masking: none of 2 checks fired (JSMA-F 90.7%)"),
                                remedy=("CW-L2 on the logits reached 30/30 targets (mean L2 2.14), JSMA on the logits "
                                        "86% of its attacks (JSMA-F on the deployed softmax: 0%)" if fired else "")))
            add(RunSummary(preset="digits", dataset="digits", data_note="", temperature=100.0,
                           accuracy={"baseline": 0.986, "teacher": 0.989, "student": 0.983},
                           mean_abs_logit={"baseline": 9.1, "teacher": 610.0, "student": 722.0},
                           saturated_share_by_model={"baseline": 0.2, "teacher": 1.0, "student": 1.0},
                           gradient_support={m: GradientSupport(pixel_share=share, pixel_share_min=share / 2,
                                                                n_inputs=100, dead_unit_share=dead)
                                             for m, share, dead in (("baseline", 0.6, 0.05), ("teacher", 0.31, 0.2),
                                                                    ("student", 0.038, 0.4))}))
            add(Finished(seconds=126.0))
    with open(path / "events.jsonl", "w") as f:
        for e in events:
            f.write(e.to_json() + "\n")
    return path
