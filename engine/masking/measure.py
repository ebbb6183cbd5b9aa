"""A model's masking evidence: the one path every caller takes (a library call on any classifier
returning logits, the known-answer controls, a run's verdict phase, `verdict` on a finished run).

Every attack runs on the same inputs and targets, so the checks can compare them input by input at the
same budget. Where each attack's outcome comes from is the caller's `Results`: computed now and kept in
memory (`MemoryResults`), or read from a run directory and written to it (the run's own `Results`,
which also hands back what the attack phase measured already, and reads without computing for
`verdict`). The steps, in order:

1. the gradient facts on the inputs: exact zeros (softmax, logits) and gradient honesty;
2. JSMA-F, JSMA on the logits and on softmax(z/T) (every wrong class of each input when `labels` are
   given, as the paper and a run attack), and CW-L2 with its escalations (one target per input);
3. randomized decisions, on the inputs and CW-L2's examples;
4. the comparators that do without this model's backward: the transfer source's CW-L2 (each kappa)
   and JSMA-F examples replayed here, SimBA, HopSkipJump, CW-L2 on estimated gradients;
5. CW-L2 attacked again, with its escalated budget, where a comparator beat it (a distance is evidence
   only once the white-box attack had a budget that works on an honest model);
6. judged; for a masked model, the matching remedy run (and, as a comparator, steps 5-6 again).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from engine.attacks.cw_l2 import CWL2Config, cw_l2, escalated, escalation_label
from engine.attacks.hop_skip_jump import HSJAConfig, hop_skip_jump, starting_points
from engine.attacks.jsma import JSMAConfig, jsma
from engine.attacks.outputs import attacked_output
from engine.attacks.simba import SimBAConfig, simba
from engine.deployment import DEPLOYED, distilled
from engine.masking.budget import jsma_curve, l2_curve
from engine.masking.checks import (
    DECISION,
    EOT,
    ESTIMATED,
    EVERY,
    GRADIENT_FREE,
    L2_MARGIN,
    LOGITS,
    TRANSFER,
    Evidence,
    judge,
)
from engine.masking.honesty import gradient_honesty
from engine.masking.randomness import randomized_decisions
from engine.masking.remedy import EOT_CW, ESTIMATED_CW, RemedyConfig, run_remedy
from engine.masking.transfer import hits
from engine.metrics import gradient_amplitude
from engine.numerics import exact_float32

Key = tuple[int, int]  # (input id, target)
Record = dict[str, Any]  # an attack's outcome: JSON values, and numpy arrays under ARRAYS
ARRAYS = ("x_adv", "made")  # the record fields a run keeps in an .npz beside its .json
OUTPUT_NAMES = {"logits": "JSMA on the logits", "softmax_T": "JSMA on softmax(z/T)"}
SIMBA, HSJA = "SimBA", "HopSkipJump"
OnFinished = Callable[[torch.Tensor], None]


class Results(Protocol):
    """Where each step's outcome comes from, for one model."""

    pause_point: Callable[[], None] | None

    def obtain(self, step: str, keys: list[Key], compute: Callable[[], Record] | None,
               partial: bool = False) -> Record | None:
        """The step's record covering `keys`: kept from before, else computed (None: not available here).
        `partial`: where nothing can be computed, a record covering only some of the keys will do."""

    def progress(self, step: str, n: int, what: str) -> OnFinished | None:
        """A callback for the attacks of `step` as they finish (live counters), or None."""


class MemoryResults:
    """Results computed on the spot and kept for the rest of the call."""

    pause_point = None

    def __init__(self, on_step: Callable[[str], None] | None = None) -> None:
        self.records: dict[str, Record] = {}
        self.on_step = on_step

    def obtain(self, step: str, keys: list[Key], compute: Callable[[], Record] | None,
               partial: bool = False) -> Record | None:
        if step not in self.records and compute is not None:
            if self.on_step is not None:
                self.on_step(step)
            self.records[step] = compute()
        return self.records.get(step)

    def progress(self, step: str, n: int, what: str) -> OnFinished | None:
        return None


@dataclass
class MeasureConfig:
    jsma: JSMAConfig = field(default_factory=JSMAConfig)
    cw: CWL2Config = field(default_factory=lambda: CWL2Config(learning_rate=0.05, binary_search_steps=6,
                                                              max_iterations=500, initial_const=0.01,
                                                              escalations=2))
    simba: SimBAConfig = field(default_factory=SimBAConfig)
    hsja: HSJAConfig = field(default_factory=HSJAConfig)
    remedy: RemedyConfig = field(default_factory=RemedyConfig)
    kappas: tuple[float, ...] = (0.0, 40.0)  # the transfer source's CW-L2 examples (kappa 0 always made)
    # the comparators run on every model: transfer (needs a source), blackbox (SimBA), decision
    # (HopSkipJump), estimated (CW-L2 on estimated gradients); budget (JSMA-F at Upsilon 100%)
    checks: tuple[str, ...] = ("transfer", "blackbox")
    run_remedy: bool = True  # a masked model: run the remedy that matches what fired

    @property
    def upsilon(self) -> float:
        return self.jsma.upsilon


@dataclass
class Subject:
    """The model judged, on its inputs and their targets (one per input: CW-L2's average case)."""

    name: str
    model: nn.Module
    x: torch.Tensor
    targets: torch.Tensor
    ids: list[int]  # each input's id: its held-out index in a run, its position otherwise
    results: Results
    labels: torch.Tensor | None = None  # given: JSMA on every wrong class of each input
    temperature: float | None = None  # the model's training T: adds JSMA on softmax(z/T)
    pool: torch.Tensor | None = None  # images HopSkipJump may start from (default: the inputs)
    cw: CWL2Config | None = None  # this model's CW-L2 budget, where it is not the config's (a control's)


@dataclass
class Source:
    """A model trained apart on the same data, whose examples are replayed on the subject (transfer)."""

    label: str  # "the baseline", "the teacher", "the surrogate"
    model: nn.Module
    results: Results


def _keys(ids: list[int], targets: torch.Tensor) -> list[Key]:
    return [(int(i), int(t)) for i, t in zip(ids, targets.tolist(), strict=True)]


def every_target(x: torch.Tensor, labels: torch.Tensor, num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Each input once per wrong class, as the paper attacks it (the L2 checks take one target per input)."""
    offsets = torch.arange(1, num_classes).repeat(len(x))
    idx = torch.arange(len(x)).repeat_interleave(num_classes - 1)
    return idx, (labels[idx] + offsets) % num_classes


def _jsma_inputs(s: Subject) -> tuple[torch.Tensor, torch.Tensor, list[Key]]:
    """JSMA's attacks: (x, targets, keys): every wrong class of each input, or the one target each."""
    if s.labels is None:
        return s.x, s.targets, _keys(s.ids, s.targets)
    idx, targets = every_target(s.x, s.labels)
    return s.x[idx], targets, _keys([s.ids[i] for i in idx.tolist()], targets)


def _by_key(record: Record | None, field_name: str, keys: list[Key]) -> list[Any] | None:
    """A record's values for `keys`, in their order (None: the record lacks one of them)."""
    if record is None:
        return None
    where = {(int(i), int(t)): n for n, (i, t) in enumerate(record["keys"])}
    if any(k not in where for k in keys):
        return None
    return [record[field_name][where[k]] for k in keys]


def _covered(record: Record, keys: list[Key]) -> list[int]:
    """The positions of `keys` that `record` holds."""
    have = {(int(i), int(t)) for i, t in record["keys"]}
    return [n for n, k in enumerate(keys) if k in have]


def _rows_of(record: Record, name: str, keys: list[Key]) -> np.ndarray:
    where = {(int(i), int(t)): n for n, (i, t) in enumerate(record["keys"])}
    return np.asarray(record[name])[[where[k] for k in keys]]


def l2_list(x: torch.Tensor, x_adv: torch.Tensor, hit: torch.Tensor) -> list[float | None]:
    """Per example, its L2 distance in float64 where it reaches its target (`hit`), else None."""
    l2 = (x_adv - x).flatten(1).double().norm(dim=1)
    return [float(v) if h else None for v, h in zip(l2.tolist(), hit.tolist(), strict=True)]


def _jsma_step(model: nn.Module, output: str, temperature: float, x: torch.Tensor, targets: torch.Tensor,
               keys: list[Key], cfg: JSMAConfig, results: Results, what: str) -> Callable[[], Record]:
    def compute() -> Record:
        done = results.progress(f"jsma-{output}", len(x), what)
        r = jsma(attacked_output(model, output, temperature), x, targets, cfg,
                 on_finished=(lambda success, _ended: done(success)) if done else None,
                 pause_point=results.pause_point)
        return {"keys": [list(k) for k in keys], "won": r.success.tolist(), "iterations": r.iterations.tolist(),
                "n_features": r.n_features, "x_adv": r.x_adv.numpy(), "made": r.success.numpy()}
    return compute


CW_SETTINGS = ("binary_search_steps", "max_iterations", "initial_const", "learning_rate", "escalations", "confidence")


def _cw_record(keys: list[Key], x: torch.Tensor, r: Any, cfg: CWL2Config) -> Record:
    # per attack: a success whose last binary step did not finish (its distance an over-estimate)
    unfinished = (r.unfinished & r.success).tolist() if r.unfinished is not None else None
    return {"keys": [list(k) for k in keys], "l2": l2_list(x, r.x_adv, r.success), "x_adv": r.x_adv.numpy(),
            "made": r.success.numpy(), "unfinished": unfinished,
            "escalations": r.escalations,
            "settings": {k: getattr(cfg, k) for k in CW_SETTINGS}}


def _cw_step(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, keys: list[Key], cfg: CWL2Config,
             results: Results, step: str, what: str) -> Callable[[], Record]:
    def compute() -> Record:
        r = cw_l2(model, x, targets, cfg, on_finished=results.progress(step, len(x), what),
                  pause_point=results.pause_point,
                  on_escalation=lambda r, n, b: results.progress(f"{step}-escalation{r}", n,
                                                                 f"{what}, {escalation_label(r, b)}"))
        return _cw_record(keys, x, r, cfg)
    return compute


def source_examples(source: Source, x: torch.Tensor, targets: torch.Tensor, ids: list[int],
                    labels: torch.Tensor | None, cfg: MeasureConfig) -> dict[str, Record | None]:
    """The source's JSMA-F examples (every wrong class with `labels`) and CW-L2 examples at each kappa for
    these inputs and targets, made once and kept by the source's Results. The source's CW-L2 is not
    escalated: escalation repairs a subject's white-box misses, which would otherwise read as masking; a
    source's miss is only an example it does not offer, and evidence of nothing (escalating the kappa-40
    misses cost a default digits run 80 s, for examples the subject did not need)."""
    sub = Subject(source.label, source.model, x, targets, ids, source.results, labels)
    xj, tj, kj = _jsma_inputs(sub)
    keys = _keys(ids, targets)
    with exact_float32():
        out = {"JSMA-F": source.results.obtain(
            "jsma-softmax", kj, _jsma_step(source.model, "softmax", DEPLOYED, xj, tj, kj, cfg.jsma, source.results,
                                           "softmax (transfer source)"), partial=True)}
        for k in sorted({0.0, *cfg.kappas}):
            step = "cw_l2" if k == 0 else f"transfer_k{k:g}"
            out[f"CW-L2 kappa={k:g}"] = source.results.obtain(step, keys, _cw_step(
                source.model, x, targets, keys, replace(cfg.cw, confidence=k, escalations=0), source.results, step,
                f"CW-L2 kappa={k:g} (transfer source)"), partial=True)
    return out


def measure_evidence(s: Subject, cfg: MeasureConfig | None = None, source: Source | None = None) -> Evidence:
    """Every check's numbers for `s.model` (see the module's steps). The model is attacked in eval mode
    and left as it was found; nothing of its weights changes."""
    cfg = cfg or MeasureConfig()
    with exact_float32():
        return _measure(s, cfg, source)


def _measure(s: Subject, cfg: MeasureConfig, source: Source | None) -> Evidence:
    res, model, keys = s.results, s.model, _keys(s.ids, s.targets)
    grads = res.obtain("gradients", keys, lambda: {"keys": [list(k) for k in keys], **{
        k: v for k, v in gradient_amplitude(model, s.x, DEPLOYED).items() if k != "values"}})
    honesty = res.obtain("honesty", keys, lambda: {"keys": [list(k) for k in keys],
                                                   **gradient_honesty(model, s.x)})
    xj, tj, kj = _jsma_inputs(s)
    f = res.obtain("jsma-softmax", kj, _jsma_step(model, "softmax", DEPLOYED, xj, tj, kj, cfg.jsma, res, "softmax"))
    f_won = _by_key(f, "won", kj)
    jsma_pairs: dict[str, list[tuple[int, bool, bool]]] = {}
    other_outputs: dict[str, float] = {}
    outputs = ["logits"] + (["softmax_T"] if s.temperature is not None and distilled(s.temperature) else [])
    for out in outputs:
        rec = res.obtain(f"jsma-{out}", kj, _jsma_step(model, out, s.temperature or DEPLOYED, xj, tj, kj, cfg.jsma, res,
                                                       out))
        won = _by_key(rec, "won", kj)
        if won is not None and f_won is not None:
            jsma_pairs[OUTPUT_NAMES[out]] = [(k[0], bool(o), bool(w)) for k, o, w in zip(kj, won, f_won, strict=True)]
            other_outputs[OUTPUT_NAMES[out]] = sum(map(bool, won)) / len(won)
    budget = res.obtain("budget", kj, _jsma_step(model, "softmax", DEPLOYED, xj, tj, kj, replace(cfg.jsma, upsilon=1.0),
                                                 res, "softmax, Upsilon 100%")) if "budget" in cfg.checks else None
    cw_rec = res.obtain("cw_l2", keys, _cw_step(model, s.x, s.targets, keys, s.cw or cfg.cw, res, "cw_l2", "CW-L2"))
    cw = _by_key(cw_rec, "l2", keys)
    randomness = res.obtain("randomness", keys, lambda: _randomness_record(s, keys, cw_rec, cw))
    comparators: dict[str, tuple[str, list[float | None]]] = {}
    compared: dict[str, list[int]] = {}  # a comparator that covers only some inputs: which
    transfer_share: dict[str, float] = {}
    blackbox: dict[str, float] = {}
    queries: dict[str, float | None] = {}
    if source is not None and "transfer" in cfg.checks:
        made = source_examples(source, s.x, s.targets, s.ids, s.labels, cfg)
        f_src = made.pop("JSMA-F")
        # a source made for other inputs (a sweep's baseline, for a student that classifies other inputs
        # correctly) is replayed where it has an example: the inputs it lacks are left out, not counted
        if f_src is not None and f_won is not None and (rows := _covered(f_src, kj)):
            sub = [kj[i] for i in rows]
            hit = hits(model, torch.from_numpy(_rows_of(f_src, "x_adv", sub)), tj[rows],
                       torch.from_numpy(_rows_of(f_src, "made", sub))).tolist()
            jsma_pairs[f"JSMA-F transfer from {source.label}"] = [(kj[i][0], bool(h), bool(f_won[i]))
                                                                 for i, h in zip(rows, hit, strict=True)]
        for label, rec in made.items():
            if rec is None or not (rows := _covered(rec, keys)):
                continue
            sub = [keys[i] for i in rows]
            x_adv = torch.from_numpy(_rows_of(rec, "x_adv", sub))
            hit = hits(model, x_adv, s.targets[rows], torch.from_numpy(_rows_of(rec, "made", sub)))
            l2: list[float | None] = [None] * len(keys)
            for i, v in zip(rows, l2_list(s.x[rows], x_adv, hit), strict=True):
                l2[i] = v
            name = f"{label} from {source.label}"
            comparators[name] = (TRANSFER, l2)
            if len(rows) < len(keys):
                compared[name] = rows
            transfer_share[name] = float(hit.float().mean())
    if "blackbox" in cfg.checks:
        rec = res.obtain("simba", keys, lambda: _simba_record(s, keys, cfg.simba))
        if rec is not None and _by_key(rec, "l2", keys) is not None:
            comparators[SIMBA] = (GRADIENT_FREE, _by_key(rec, "l2", keys))
            blackbox[SIMBA] = sum(v is not None for v in comparators[SIMBA][1]) / len(keys)
            queries[SIMBA] = rec.get("mean_queries_per_success")
    if "decision" in cfg.checks:
        rec = res.obtain("hsja", keys, lambda: _hsja_record(s, keys, cfg.hsja))
        if rec is not None and _by_key(rec, "l2", keys) is not None:
            comparators[HSJA] = (DECISION, _by_key(rec, "l2", keys))
            queries[HSJA] = rec.get("mean_queries")
    remedies: dict[str, list[float | None]] = {}
    if "estimated" in cfg.checks:
        _add_remedy(s, cfg, ESTIMATED_CW, keys, comparators, remedies)
    settled: dict[str, int] = {}
    rows = _by_key(cw_rec, "unfinished", keys) if cw_rec is not None and cw_rec.get("unfinished") else None
    unfinished = [bool(v) for v in rows] if rows is not None else None
    if cw is not None:
        cw, unfinished = _settle(s, cfg, keys, cw, unfinished, comparators, settled, "settled")

    def evidence() -> Evidence:  # what is measured so far (the remedy and a second settling add to it)
        return _evidence(s, cfg, keys, Measured(
            grads=grads, honesty=honesty, randomness=randomness, f=f, budget=budget, cw_rec=cw_rec, cw=cw,
            unfinished=unfinished, jsma_pairs=jsma_pairs, other_outputs=other_outputs, comparators=comparators,
            compared=compared, remedies=remedies, settled=settled, transfer_share=transfer_share,
            blackbox=blackbox, queries=queries))

    e = evidence()
    if not cfg.run_remedy or cw is None:
        return e
    verdict = judge(e)
    needed = [ESTIMATED_CW if g == LOGITS else EOT_CW for g in (LOGITS, EVERY)
              if verdict.verdict == "masked" and any(c.fired and c.gradient == g for c in verdict.checks)]
    needed = [a for a in needed if a not in remedies]
    if not needed:
        return e
    for attack in needed:
        _add_remedy(s, cfg, attack, keys, comparators, remedies)
    cw, unfinished = _settle(s, cfg, keys, cw, unfinished, comparators, settled, "settled-remedy")
    return evidence()


Comparators = dict[str, tuple[str, list[float | None]]]  # name -> (kind, L2 per input or None)


def _add_remedy(s: Subject, cfg: MeasureConfig, attack: str, keys: list[Key], comparators: Comparators,
                remedies: dict[str, list[float | None]]) -> None:
    step = "estimated" if attack == ESTIMATED_CW else "eot"

    def compute() -> Record:
        r = run_remedy(s.model, attack, s.x, s.targets, s.cw or cfg.cw, cfg.remedy,
                       on_finished=s.results.progress(step, len(keys), attack), pause_point=s.results.pause_point)
        return _cw_record(keys, s.x, r, s.cw or cfg.cw)

    rec = s.results.obtain(step, keys, compute)
    l2 = _by_key(rec, "l2", keys)
    if l2 is not None:
        remedies[attack] = l2
        comparators[attack] = (ESTIMATED if attack == ESTIMATED_CW else EOT, l2)


def _settle(s: Subject, cfg: MeasureConfig, keys: list[Key], cw: list[float | None], unfinished: list[bool] | None,
            comparators: Comparators, settled: dict[str, int], step: str
            ) -> tuple[list[float | None], list[bool] | None]:
    """CW-L2 attacked again, at its budget escalated once (a budget that reaches every target of an honest
    model: twice the iterations, at least 6 binary steps of 1,000), on the inputs where a comparator's
    example is L2_MARGIN x smaller than CW-L2's; each keeps the smaller of its examples. An input stays
    unfinished only when neither attempt finished its optimisation."""
    rows = [i for i, w in enumerate(cw) if w is not None and any(
        v[i] is not None and v[i] * L2_MARGIN < w for _kind, v in comparators.values())]
    if not rows:
        return cw, unfinished
    sub_keys = [keys[i] for i in rows]

    def compute() -> Record:
        budget = replace(escalated(s.cw or cfg.cw, missed=False), escalations=0)
        x, t = s.x[rows], s.targets[rows]
        r = cw_l2(s.model, x, t, budget, on_finished=s.results.progress(step, len(rows), "CW-L2 again where beaten"),
                  pause_point=s.results.pause_point)
        return {"keys": [list(k) for k in sub_keys], "l2": l2_list(x, r.x_adv, r.success),
                "unfinished": (r.unfinished & r.success).tolist() if r.unfinished is not None else None,
                "max_iterations": budget.max_iterations, "binary_search_steps": budget.binary_search_steps}

    rec = s.results.obtain(step, sub_keys, compute)
    again = _by_key(rec, "l2", sub_keys)
    if again is None:
        return cw, unfinished
    still = _by_key(rec, "unfinished", sub_keys) if rec.get("unfinished") is not None else [False] * len(rows)
    out, flags = list(cw), list(unfinished) if unfinished is not None else None
    improved = 0
    for i, v, cut in zip(rows, again, still, strict=True):
        if v is not None and (out[i] is None or v < out[i]):
            out[i], improved = v, improved + 1
        if flags is not None:
            flags[i] = flags[i] and bool(cut)
    settled["attacks"] = settled.get("attacks", 0) + len(rows)
    settled["improved"] = settled.get("improved", 0) + improved
    return out, flags


def _randomness_record(s: Subject, keys: list[Key], cw_rec: Record | None, cw: list[float | None] | None) -> Record:
    """Decisions over several calls on the inputs and at the boundary towards each target: the boundary
    crossed by CW-L2's example where it reached the target, else by the nearest pool image of the target."""
    ends, found = starting_points(s.model, s.x, s.targets, s.pool if s.pool is not None else s.x)
    if cw_rec is not None and cw is not None:
        reached = torch.tensor([v is not None for v in cw])
        ends[reached] = torch.from_numpy(_rows_of(cw_rec, "x_adv", keys))[reached].to(ends.dtype)
        found |= reached
    return {"keys": [list(k) for k in keys], **randomized_decisions(s.model, s.x, s.targets, ends, found)}


def _simba_record(s: Subject, keys: list[Key], cfg: SimBAConfig) -> Record:
    r = simba(s.model, s.x, s.targets, cfg, on_finished=s.results.progress("simba", len(keys), "deployed log-scores"),
              pause_point=s.results.pause_point)
    q = float(r.queries[r.success].double().mean()) if r.success.any() else None
    return {"keys": [list(k) for k in keys], "l2": l2_list(s.x, r.x_adv, r.success),
            "success_rate": float(r.success.float().mean()), "mean_queries_per_success": q,
            "max_queries": cfg.max_queries, "epsilon": cfg.epsilon}


def _hsja_record(s: Subject, keys: list[Key], cfg: HSJAConfig) -> Record:
    pool = s.pool if s.pool is not None else s.x
    r = hop_skip_jump(s.model, s.x, s.targets, pool, cfg,
                      on_finished=s.results.progress("hsja", len(keys), "decisions only"),
                      pause_point=s.results.pause_point)
    return {"keys": [list(k) for k in keys], "l2": l2_list(s.x, r.x_adv, r.success),
            "mean_queries": float(r.queries.double().mean()) if len(keys) else None, "failed": r.failed,
            "steps": cfg.steps}


@dataclass
class Measured:
    """The records and pairs one model's measurement has gathered, before they are read as Evidence."""

    grads: Record | None
    honesty: Record | None
    randomness: Record | None
    f: Record | None  # JSMA-F's outputs
    budget: Record | None  # JSMA-F at Upsilon 100%
    cw_rec: Record | None
    cw: list[float | None] | None  # CW-L2's L2 per input (None: missed), after the settling
    unfinished: list[bool] | None  # per input: CW-L2's optimisation left unfinished
    jsma_pairs: dict[str, list[tuple[int, bool, bool]]]
    other_outputs: dict[str, float]
    comparators: Comparators
    compared: dict[str, list[int]]  # a comparator that covers only some inputs: which
    remedies: dict[str, list[float | None]]
    settled: dict[str, int]
    transfer_share: dict[str, float]
    blackbox: dict[str, float]
    queries: dict[str, float | None]


def _evidence(s: Subject, cfg: MeasureConfig, keys: list[Key], m: Measured) -> Evidence:
    grads, honesty, randomness, f, budget, cw_rec, cw = m.grads, m.honesty, m.randomness, m.f, m.budget, m.cw_rec, m.cw
    comparators = m.comparators
    n = len(keys)
    f_won = [bool(v) for v in f["won"]] if f is not None else []
    kept = cw_rec.get("settings", {}) if cw_rec is not None else {}
    # in CW_SETTINGS' order, whoever wrote the record (a run's preset section or this module): the same words
    settings = {k: kept[k] for k in CW_SETTINGS if k in kept}
    rows = _by_key(cw_rec, "unfinished", keys) if cw_rec is not None and cw_rec.get("unfinished") else None
    unfinished = sum(map(bool, rows)) if rows is not None else None
    jsma_budget: dict[str, float] = {}
    if budget is not None:
        jsma_budget = jsma_curve(torch.tensor(budget["won"]), torch.tensor(budget["iterations"]), budget["n_features"])
    e = Evidence(
        model=s.name, whitebox_success=sum(f_won) / len(f_won) if f_won else 0.0, upsilon=cfg.upsilon,
        zero_gradients=(int(grads["zero_inputs"]), int(grads["n_inputs"])) if grads else None,
        zero_logit_gradients=(int(grads["zero_logit_inputs"]), int(grads["n_inputs"]))
        if grads and "zero_logit_inputs" in grads else None,
        honesty=(int(honesty["disagreeing_inputs"]), int(honesty["n_inputs"])) if honesty else None,
        honesty_every_step=int(honesty["disagreeing_at_every_step"]) if honesty else None,
        honesty_errors=dict(honesty.get("median_error_by_step", {})) if honesty else {},
        randomized=(int(randomness["randomized_inputs"]), int(randomness["n_inputs"])) if randomness else None,
        randomized_calls=int(randomness.get("calls", 2)) if randomness else 0,
        jsma_pairs=m.jsma_pairs, l2_pairs={k: v for k, (_kind, v) in comparators.items()},
        comparator_kinds={k: kind for k, (kind, _v) in comparators.items()},
        cw_l2=list(cw) if cw is not None else [], cw_settings=settings,
        cw_escalated=bool(settings.get("escalations", 0)),
        cw_unconverged=(int(unfinished), n) if unfinished is not None and cw is not None else None,
        settled=dict(m.settled), remedies=dict(m.remedies),
        zero_gradient_share=float(grads["zero_share"]) if grads and "zero_share" in grads else None,
        other_outputs=m.other_outputs, transfer=m.transfer_share, blackbox=m.blackbox,
        blackbox_queries=m.queries, jsma_budget=jsma_budget,
        cw_budget=l2_curve(torch.tensor([v is not None for v in cw]),
                           torch.tensor([v if v is not None else float("inf") for v in cw], dtype=torch.float64))
        if cw else {},
        l2_compared=dict(m.compared))
    e.cw_unfinished = list(m.unfinished) if m.unfinished is not None and cw is not None else []
    e.cw_unconverged = (sum(e.cw_unfinished), n) if e.cw_unfinished else e.cw_unconverged
    return e
