"""Does a run's CPU-budget CW-L2 understate the attack? The same attacks again at the reference's settings.

    python bench/cw_budget.py RUN_DIR [RUN_DIR ...] [--model student] [--model baseline]
        [--out bench/results/cw-budget]

A run's CW-L2 (attacks/<model>-cw_l2.npz: inputs, targets, success, L2) is read as it was measured
(the sweep's CPU budget: Adam lr 0.05, at most 1,000 iterations per binary step). The same model
(its checkpoint in the run) is then attacked on the same inputs and targets at Carlini and Wagner's own
settings: Adam lr 0.01, up to 10,000 iterations per binary step, 9 binary steps from c = 0.001,
abort_early, and no escalation (the reference runs once). Per (run, model): success under each
budget with its 95% interval, the paired count (reached by one budget only), mean L2 over the attacks
both reached, and the seconds each took. A table (markdown) and JSON; torch version and commit recorded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.attacks.cw_l2 import CWL2Config, cw_l2  # noqa: E402
from engine.masking.checks import interval  # noqa: E402
from engine.model_factory import build_model  # noqa: E402
from engine.presets import preset_from_toml  # noqa: E402
from engine.record.events import recorded_temperature  # noqa: E402
from engine.record.rundir import ATTACKS, RunDir, _git_commit, atomic_write_bytes, read_json  # noqa: E402
from engine.steps.experiment import fit_checkpoint  # noqa: E402

REFERENCE = CWL2Config(learning_rate=1e-2, binary_search_steps=9, max_iterations=10_000, abort_early=True,
                       initial_const=1e-3, escalations=0)


def _refuse(message: str) -> None:
    """Bad input: one line naming the problem and the fix, exit 2, nothing written."""
    print(f"cw_budget: {message}", file=sys.stderr)
    raise SystemExit(2)


def _network(run: Path, model: str) -> torch.nn.Module:
    rundir = RunDir.open(run)
    preset = preset_from_toml(rundir.read_preset_toml(), str(run / "preset.toml"))
    saved = rundir.load_tensors(model)
    if saved is None:
        _refuse(f"{run} has no {model} checkpoint; choose a finished run, or a --model it trained")
    net = build_model(preset, load_weights=False)
    fit_checkpoint(rundir, model, *saved, net, None)
    return net.eval()


def measure(run: Path, model: str, reference: CWL2Config | None = REFERENCE) -> dict[str, Any]:
    """One (run, model); `reference` None: the run's own settings again (must repeat its numbers)."""
    fix = f"attack the run with CW-L2 first: defdistill-engine attack {run} --method cw_l2 --model {model}"
    if not (run / ATTACKS / f"{model}-cw_l2.npz").is_file():
        _refuse(f"{run / ATTACKS / (model + '-cw_l2.npz')} is missing; {fix}")
    stored = read_json(run / ATTACKS / f"{model}-cw_l2.json", fix) or {}
    try:
        with np.load(run / ATTACKS / f"{model}-cw_l2.npz") as arrays:
            x, targets = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["target"]).long()
            before_ok, before_l2 = torch.from_numpy(arrays["success"]).bool(), torch.from_numpy(arrays["l2"]).double()
        if reference is None:
            reference = CWL2Config(**stored["settings"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _refuse(f"{run / ATTACKS / (model + '-cw_l2.*')} cannot be read ({type(exc).__name__}); {fix}")
    net = _network(run, model)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    after = cw_l2(net, x, targets, reference)
    seconds = time.perf_counter() - t0
    after_ok, after_l2 = after.success.bool(), after.l2.double()
    both = before_ok & after_ok
    n = len(x)

    def side(ok: torch.Tensor, l2: torch.Tensor) -> dict[str, Any]:
        k = int(ok.sum())
        return {"succeeded": k, "success_rate": k / max(n, 1), "interval": list(interval(k, n)),
                "mean_l2": float(l2[ok].mean()) if k else None,
                "mean_l2_where_both": float(l2[both].mean()) if both.any() else None}

    return {"run": str(run), "model": model, "temperature": recorded_temperature(stored, "model_temperature"),
            "n_attacks": n,
            "budget": {**side(before_ok, before_l2), "settings": stored.get("settings"),
                       "seconds": stored.get("seconds")},
            "reference": {**side(after_ok, after_l2), "settings": asdict(reference),
                          "seconds": seconds, "mean_iterations": float(after.iterations.double().mean()),
                          "unconverged": None if after.unfinished is None else int(after.unfinished.sum())},
            "only_budget": int((before_ok & ~after_ok).sum()), "only_reference": int((after_ok & ~before_ok).sum())}


def _pct(side: dict[str, Any], n: int) -> str:
    lo, hi = side["interval"]
    return f"{side['succeeded']}/{n} = {100 * side['success_rate']:.0f}% ({100 * lo:.0f}-{100 * hi:.0f}%)"


def _l2(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| run | model | T | CPU budget: success (95% CI) | reference: success (95% CI) | reached by one only "
             "(budget / reference) | mean L2 where both reached (budget / reference) | seconds (budget / reference) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b, f, n = r["budget"], r["reference"], r["n_attacks"]
        lines.append(f"| {Path(r['run']).name} | {r['model']} | {r['temperature']:g} | {_pct(b, n)} | "
                     f"{_pct(f, n)} | {r['only_budget']} / {r['only_reference']} | "
                     f"{_l2(b['mean_l2_where_both'])} / {_l2(f['mean_l2_where_both'])} | "
                     f"{b['seconds'] or 0:.0f} / {f['seconds']:.0f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--model", action="append", help="repeatable (default: student)")
    ap.add_argument("--out", default="bench/results/cw-budget", help="path without suffix: .md .json")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--iterations", type=int, default=REFERENCE.max_iterations,
                    help="per binary step (the reference's 10,000; fewer only for a smoke test)")
    ap.add_argument("--binary-steps", type=int, default=REFERENCE.binary_search_steps)
    ap.add_argument("--settings-of-run", action="store_true",
                    help="attack again at the run's own settings: must repeat its numbers (a check of this script)")
    args = ap.parse_args()
    reference = None if args.settings_of_run else replace(REFERENCE, max_iterations=args.iterations,
                                                          binary_search_steps=args.binary_steps)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for run in args.runs:
        for model in args.model or ["student"]:
            print(f"{run} {model}: CW-L2 again ...", flush=True)  # stdout: stderr is for the one-line refusals
            rows.append(measure(run, model, reference))
            print("\n".join(table(rows[-1:])[2:]), flush=True)
    commit = (_git_commit() or "")[:7]
    metas = {r["run"]: read_json(Path(r["run"]) / "meta.json", "it only labels this table") or {} for r in rows}
    run_commits = {run: meta.get("git_commit") for run, meta in metas.items()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"torch": torch.__version__, "commit": commit, "run_commits": run_commits, "rows": rows}
    atomic_write_bytes(out.with_suffix(".json"), json.dumps(record, indent=1).encode())
    label = ("the reference's settings" if reference == REFERENCE else "the run's own settings" if reference is None
             else f"{reference.binary_search_steps} binary steps of {reference.max_iterations} iterations "
                  "(NOT the reference's)")
    how = "" if reference is None else (f": Adam lr {reference.learning_rate}, c from {reference.initial_const}, "
                                        "abort_early, no escalation")
    lines = [f"CW-L2 on the same inputs and targets at the run's CPU budget and at {label}{how} "
             f"(torch {torch.__version__}, commit {commit})", "", *table(rows)]
    atomic_write_bytes(out.with_suffix(".md"), ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
