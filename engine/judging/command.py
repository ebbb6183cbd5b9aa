"""`defdistill-engine judge MODEL`: a researcher's model judged in one command.

The model is loaded, never trained: from `--weights`, or as its factory returns it (weights included).
It becomes the baseline of an ordinary run directory (the dashboard opens it, `report` reads it,
`verdict` judges it again) attacked at one of the budgets of engine/masking/budgets.py, with transfer
evidence from `--surrogate`, else from a Table I net trained on the same data (cached between calls,
engine/judging/surrogate_cache.py). Then the verdict as a short table, or as JSON, and an exit code a
CI can use.
"""

from __future__ import annotations

import argparse
import json
import re
import tomllib
from pathlib import Path

from engine.errors import PresetError, quoted
from engine.masking.budgets import as_overrides, budget_settings, toml_value

# what `judge` attacks: the baseline (the model given), JSMA on its softmax and logits, CW-L2 (average case)
FIXED = ["distillation.phases=['baseline']", "attack.enabled=true", "attack.models=['baseline']",
         "attack.methods=['jsma', 'cw_l2']", "attack.outputs=['softmax', 'logits']", "attack.cw_cases=['average']",
         "attack.cw_reduced=''"]


def factory_args(pairs: list[str], flag: str) -> str:
    """KEY=VALUE pairs (values in TOML, bare words as strings) as a TOML inline table."""
    out = []
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise PresetError(f"{flag} {quoted(pair)} is not KEY=VALUE with KEY a Python name; e.g. {flag} width=64")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word: a string
        out.append(f"{key} = {toml_value(value)}")
    return "{" + ", ".join(out) + "}"


def _weights_of_factory(data: str, overrides: list[str], name: str) -> str:
    """The factory's model as it returns it, its weights saved where the run loads them from: a model
    judged is never trained by the run."""
    from engine.checkpoints import model_digest
    from engine.judging.surrogate_cache import cache_root, save_state
    from engine.model_factory import build_model
    from engine.presets import load_preset

    model = build_model(load_preset(data, overrides))
    state = model.state_dict()
    path = cache_root() / "models" / f"{name}-{model_digest(state)}.safetensors"
    if not path.exists():
        save_state(state, path)
    return str(path)


def judge_overrides(args: argparse.Namespace) -> list[str]:
    """The run's preset overrides: the model, its budget, its surrogate."""
    from engine.judging.surrogate_cache import surrogate_path
    from engine.presets import load_preset

    out = [*FIXED, f"network.factory={toml_value(args.model)}",
           f"network.factory_args={factory_args(args.args, '--args')}",
           *as_overrides(budget_settings(args.budget, args.n))]
    if args.weights:
        out.append(f"network.weights={toml_value(str(Path(args.weights).expanduser().resolve()))}")
    else:
        made = _weights_of_factory(args.data, [*out, *args.overrides], _label(args.model))
        out.append(f"network.weights={toml_value(made)}")
    if args.surrogate or args.surrogate_weights:
        if args.surrogate:
            out += [f"attack.surrogate.factory={toml_value(args.surrogate)}",
                    f"attack.surrogate.factory_args={factory_args(args.surrogate_args, '--surrogate-args')}"]
        if args.surrogate_weights:
            out.append("attack.surrogate.weights="
                       f"{toml_value(str(Path(args.surrogate_weights).expanduser().resolve()))}")
    else:
        cached = surrogate_path(load_preset(args.data, [*out, *args.overrides]))
        if cached.exists():
            out.append(f"attack.surrogate.weights={toml_value(str(cached))}")
    return [*out, *args.overrides]  # the user's --set last: it wins


def _label(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", model.replace(":", "."))[:60]


def _keep_surrogate(run_dir: Path, data: str, overrides: list[str]) -> None:
    """The Table I surrogate this run trained, into the cache for the next `judge` on the same data."""
    from engine.judging.surrogate_cache import save_state, surrogate_path
    from engine.presets import load_preset
    from engine.record.rundir import RunDir

    preset = load_preset(data, overrides)
    if preset.attack.surrogate.named or surrogate_path(preset).exists():
        return
    loaded = RunDir.open(run_dir).load_tensors("surrogate")
    if loaded is not None:
        tensors, _meta = loaded
        save_state({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")},
                   surrogate_path(preset))


def judge_command(args: argparse.Namespace) -> int:
    from engine.presets import load_preset
    from engine.record.rundir import default_run_dir
    from engine.reports.verdicts import fail_on_exit, format_verdicts, verdict_rows
    from engine.sessions.host import follow, open_job
    from engine.sessions.job import Job

    overrides = judge_overrides(args)
    load_preset(args.data, overrides)  # every problem with the input, one line, before anything is written
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(f"judge-{_label(args.model)}")
    job = Job("run", preset=args.data, overrides=tuple(overrides), run_dir=str(run_dir), data_root=args.data_root,
              download=args.download, quiet=args.quiet or args.json)
    code = follow(open_job(job), job.quiet, headline_out=False)
    if code != 0:
        return code
    _keep_surrogate(run_dir, args.data, overrides)
    rows = [(label if label != "baseline" else _label(args.model), v) for label, v in verdict_rows(run_dir)]
    if args.json:
        print(json.dumps({"path": str(run_dir), "budget": args.budget, "verdicts": dict(rows)}, indent=2))
    else:
        print(format_verdicts(rows, args.long))
        print(f"\nthe evidence: {run_dir} (defdistill-tui --open {run_dir}; defdistill-engine report {run_dir})")
    return fail_on_exit(rows, args.fail_on)

