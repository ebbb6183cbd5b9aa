"""defdistill-engine: the engine headless. User errors are one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from engine.command_line import (
    RUN_DIR_COMPLETION,
    OneLineParser,
    add_completion,
    linux_only,
    preset_argument,
    run_dir_argument,
    version_line,
)
from engine.deployment import label as temperature_label
from engine.errors import EXIT_USER_ERROR, UserError
from engine.masking.budgets import BUDGETS
from engine.sessions.job import Job


def _overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a preset field, e.g. --set distillation.temperature=20 (repeatable; values are "
                        "TOML: --set \"attack.outputs=['softmax']\")")


def _data_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", metavar="DIR", help="folder holding the datasets (overrides the preset's data.root)"
                   ).complete = RUN_DIR_COMPLETION


def _quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars or notices: one line per finished phase on stderr, for logs and scripts")


def _fail_on(p: argparse.ArgumentParser, when: str) -> None:
    p.add_argument("--fail-on", action="append", choices=["masked", "inconclusive"], default=[], metavar="VERDICT",
                   help=f"exit 1 {when} (masked or inconclusive; repeatable), for scripts and CI; default exit 0 "
                        "whatever is found; exit 2 on bad input")


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="defdistill-engine", description="Defensive distillation experiments, headless "
                      "(Linux only). Each command's --help says more.")
    p.add_argument("--version", action="version", version=version_line("defdistill-engine"),
                   help="print the version (with torch's and Python's) and exit")
    add_completion(p)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="train baseline, teacher and student, then attack (per the preset)",
                         description="Train baseline, teacher and student, then attack them, as the preset says.")
    preset_argument(run)
    run.add_argument("--run-dir", metavar="DIR", help="where results go (default runs/<preset>-<UTC time>)"
                     ).complete = RUN_DIR_COMPLETION
    _overrides(run)
    _data_root(run)
    run.add_argument("--download", action="store_true",
                     help="allow torchvision to download the dataset (never done otherwise)")
    _quiet(run)

    res = sub.add_parser("resume", help="continue an interrupted or stopped run from its last checkpoint")
    run_dir_argument(res, "run_dir", "the run directory to continue")
    _data_root(res)
    _quiet(res)

    sub.add_parser("presets", help="list presets with one-line descriptions")

    chk = sub.add_parser("check", help="validate a preset with its overrides and print it resolved; runs nothing")
    preset_argument(chk)
    _overrides(chk)

    sw = sub.add_parser("sweep", help="one baseline, then a distilled student per temperature, each attacked")
    preset_argument(sw)
    sw.add_argument("--temperatures", metavar="T,T,...",
                    help="comma-separated (default: an existing sweep's own, else the paper's "
                    "1,2,5,10,20,30,40,50,100); on an existing sweep, new ones join its plan and only these run")
    sw.add_argument("--quick", action="store_true", help="5 epochs (lr halved every 2) and 20 attack inputs: "
                    "a laptop profile, labelled as such in the report")
    sw.add_argument("--sweep-dir", metavar="DIR",
                    help="default: the newest unfinished sweep of this command under --runs, else "
                         "runs/sweep-<preset>-<UTC time>; an existing one is resumed, and grows by --temperatures"
                    ).complete = RUN_DIR_COMPLETION
    sw.add_argument("--runs", default="runs", metavar="DIR",
                    help="where a sweep without --sweep-dir is looked for and made (default: runs)"
                    ).complete = RUN_DIR_COMPLETION
    _overrides(sw)
    _data_root(sw)
    _quiet(sw)
    sw.add_argument("--seeds", metavar="S,S,...",
                    help="comma-separated seeds, e.g. 0,1,2: mean and spread in the table and figures")
    sw.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                    help="run each temperature x seed as a Ray task (needs the ray extra): alone or `local` starts "
                         "a local Ray, `auto` joins the running cluster, HOST:PORT or ray://HOST:PORT names one; "
                         "anything else after --ray is read as the preset, not as an address")
    sw.add_argument("--ray-cpus", type=int, metavar="N", help="CPUs of a local Ray instance (default: all)")
    sw.add_argument("--parallel", type=int, default=1, metavar="N",
                    help="run N runs at once on this machine, each an engine process of its own (small CNNs leave "
                         "a GPU mostly idle: several share it)")
    sw.add_argument("--runs-per-gpu", type=int, default=1, metavar="N",
                    help="with --ray: N runs share each GPU (each asks Ray for 1/N GPU)")
    sw.add_argument("--after", metavar="RUN_DIR", help="start once the engine of RUN_DIR has ended (the dashboard's "
                    "`w`: two trainings at once would halve each other's speed)").complete = RUN_DIR_COMPLETION

    ps = sub.add_parser("ps", help="list runs with their state, preset, phase and progress")
    ps.add_argument("runs_dir", nargs="?", default="runs", help="folder searched for run directories (default: runs)"
                    ).complete = RUN_DIR_COMPLETION
    ps.add_argument("--json", action="store_true",
                    help="one JSON object per run (a list): path, state, preset, phase, progress, updated (Unix "
                         "time or null), updated_utc")

    stop = sub.add_parser("stop", help="stop a running engine cleanly (checkpoint, resumable)")
    run_dir_argument(stop, "run_dir", "the run directory whose engine stops")

    rep = sub.add_parser("report", help="write report.md for a finished run or sweep directory")
    run_dir_argument(rep, "path", "a finished run or sweep directory")
    rep.add_argument("--compare", metavar="SWEEP_DIR", help="another sweep (e.g. the quick profile) for the fidelity "
                     "section; kept as compare-sweep.json beside sweep.json").complete = RUN_DIR_COMPLETION
    rep.add_argument("--json", action="store_true", help="write the figures too (a run: a grid of its adversarial "
                     "examples) and print {\"files\": [report.md, PNGs]} as JSON")

    tb = sub.add_parser("export-tensorboard", help="write a run's (or a sweep's runs') curves as TensorBoard events")
    run_dir_argument(tb, "path", "a run or sweep directory")
    tb.add_argument("--logdir", metavar="DIR", help="where the event files go (default PATH/tensorboard), one folder "
                    "per run").complete = RUN_DIR_COMPLETION

    ver = sub.add_parser("verdict", help="is the robustness real? the masking checks and a verdict per model")
    run_dir_argument(ver, "path", "a finished run or sweep directory")
    ver.add_argument("--json", action="store_true",
                     help="print the verdicts as JSON: {path, verdicts: {model or T: {verdict, text, checks, "
                          "evidence}}} (docs/verdict.md)")
    ver.add_argument("--long", action="store_true", help="each check's full evidence beneath its row")
    _fail_on(ver, "when any model's verdict is this one")

    jd = sub.add_parser("judge", help="is this model's robustness real? any PyTorch model, judged in one command",
                        description="Load MODEL (never trained), attack it at a budget, and say whether its "
                        "robustness is real or its gradients masked: the checks, each with k/n and a 95%% interval, "
                        "and for a masked model what the matching remedy reached. The evidence is an ordinary "
                        "run directory (docs/judge.md).")
    jd.add_argument("model", metavar="MODEL", help='"package.module:callable" returning an nn.Module that maps '
                    "images in [0, 1] to 10 logits (importable from here: pip install it, or set PYTHONPATH)")
    jd.add_argument("--args", action="append", default=[], metavar="KEY=VALUE",
                    help="a keyword argument of the callable (repeatable; values in TOML, bare words are strings)")
    jd.add_argument("--weights", metavar="FILE", help="its state dict (.safetensors, or a torch file read "
                    "weights_only); default: the weights the callable gives it").complete = RUN_DIR_COMPLETION
    jd.add_argument("--data", default="digits", metavar="PRESET", help="the data, as a preset: digits (default), "
                    "mnist-t10k, fashion-mnist, cifar10, mnist, or a .toml path")
    _data_root(jd)
    jd.add_argument("--download", action="store_true", help="allow torchvision to download the dataset")
    jd.add_argument("--n", type=int, metavar="INPUTS", help="held-out inputs attacked (default: the budget's: "
                    "quick 20, standard 30, reference 100)")
    jd.add_argument("--budget", choices=list(BUDGETS), default="standard",
                    help="quick (a first look), standard (the known-answer controls' budget, default), reference "
                         "(Carlini & Wagner's own settings, with HopSkipJump): engine/masking/budgets.py")
    jd.add_argument("--surrogate", metavar="MODULE:CALLABLE", help="the transfer source, a network trained apart "
                    "on the same data (default: a Table I net trained here on the data, cached between calls)")
    jd.add_argument("--surrogate-args", action="append", default=[], metavar="KEY=VALUE",
                    help="a keyword argument of the surrogate's callable (repeatable)")
    jd.add_argument("--surrogate-weights", metavar="FILE", help="the surrogate's state dict (loaded, not trained)"
                    ).complete = RUN_DIR_COMPLETION
    jd.add_argument("--run-dir", metavar="DIR", help="where the evidence goes (default runs/judge-<model>-<UTC time>)"
                    ).complete = RUN_DIR_COMPLETION
    jd.add_argument("--json", action="store_true", help="print {path, budget, verdicts: {model: {verdict, text, "
                    "checks, evidence, remedy}}} as `verdict --json` does, and no progress")
    jd.add_argument("--long", action="store_true", help="each check's full evidence beneath its row")
    _overrides(jd)
    _fail_on(jd, "when the verdict is this one")
    _quiet(jd)

    att = sub.add_parser("attack", help="attack the models of a finished run (JSMA and/or C&W)")
    run_dir_argument(att, "run_dir", "a finished run directory, or a live one (the attack is queued on its engine)")
    att.add_argument("--model", action="append", choices=["baseline", "teacher", "student"],
                     help="the model attacked (repeatable; default the preset's attack.models)")
    att.add_argument("--output", action="append", choices=["softmax", "logits", "softmax_T"],
                     help="JSMA's attacked output (repeatable; default the preset's attack.outputs)")
    att.add_argument("--method", action="append", choices=["jsma", "cw_l2", "cw_l0", "cw_linf"],
                     help="which attacks (repeatable; default the preset's attack.methods, none with --checks alone)")
    att.add_argument("--checks", action="store_true",
                     help="measure the preset's masking checks and a verdict per model (attack.checks)")
    att.add_argument("--samples", type=int, metavar="N", help="held-out inputs attacked (default attack.samples)")
    _data_root(att)
    _quiet(att)
    return p


def _is_ray_address(token: str) -> bool:
    """What `--ray` takes: local, auto, HOST:PORT or ray://HOST:PORT (Ray needs a port to join a cluster)."""
    return token in ("local", "auto") or ":" in token


def split_ray_address(argv: list[str]) -> list[str]:
    """`sweep --ray mnist` means a local Ray and the preset mnist: --ray keeps only a token that is an
    address (argparse alone would take any next word as the optional value and lose the preset)."""
    out = list(argv)
    for i, token in enumerate(out[:-1]):
        nxt = out[i + 1]
        if token == "--ray" and not nxt.startswith("-") and not _is_ray_address(nxt):
            out.insert(i + 1, "local")
            break
    return out


def _sweep(args: argparse.Namespace) -> int:
    import signal
    from pathlib import Path

    from engine.reports.report import write_report
    from engine.sweeps.plan import SweepRequest, check_sweep_preset, parse_seeds, parse_temperatures
    from engine.sweeps.sweep import SweepStopped, run_sweep

    temps = parse_temperatures(args.temperatures) if args.temperatures else None  # None: the plan's, or the paper's
    seeds = parse_seeds(args.seeds)
    check_sweep_preset(args.preset, args.overrides, args.quick)  # bad input: one line, before any folder is made
    # the whole sweep outlives a dropped terminal, between runs too (each run restores what it found)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if args.after:
        _wait_for_run(args.after)
    if args.parallel < 1 or args.runs_per_gpu < 1:
        raise UserError("--parallel and --runs-per-gpu take a whole number >= 1, e.g. --parallel 4")
    say = (lambda _m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    sweep_dir = Path(args.sweep_dir) if args.sweep_dir else _default_sweep_dir(args, temps, seeds)
    request = SweepRequest(args.preset, sweep_dir, overrides=tuple(args.overrides),
                           temperatures=None if temps is None else tuple(temps), quick=args.quick,
                           data_root=args.data_root, seeds=None if seeds is None else tuple(seeds))
    if args.ray is not None:
        from engine.sweeps.ray_sweep import run_sweep_on_ray

        result = run_sweep_on_ray(request, address=args.ray, num_cpus=args.ray_cpus, runs_per_gpu=args.runs_per_gpu,
                                  progress=say)
    elif args.parallel > 1:
        from engine.sweeps.parallel import run_sweep_parallel

        result = run_sweep_parallel(request, parallel=args.parallel, progress=say)
    else:
        try:
            result = run_sweep(request, follow=lambda session: _sweep_step(session, args.quiet))
        except SweepStopped as exc:
            from engine.sessions.host import EXIT_STOPPED

            print(f"defdistill-engine: {exc}", file=sys.stderr)
            return EXIT_STOPPED
    report = write_report(sweep_dir)
    failed = result.failed
    for name, why in failed.items():  # each failure once more at the end, where a person looks
        print(f"defdistill-engine: sweep run {sweep_dir / name} failed: {why}", file=sys.stderr)
    print(json.dumps({"sweep_dir": str(sweep_dir), "report": str(report), "temperatures": result.temperatures,
                      "success_rate_softmax": {temperature_label(t): v.success_rate.get("softmax")
                                               for t, v in result.by_temperature.items()},
                      "baseline_success_rate_softmax": result.baseline.success_rate.get("softmax"),
                      "failed": failed, "seconds": result.seconds}, indent=2))
    return 1 if failed else 0


def _default_sweep_dir(args: argparse.Namespace, temps: list[float] | None, seeds: list[int] | None):
    """Without --sweep-dir: the newest unfinished sweep of the preset under runs/ when this is the command
    that made it (so re-running a sweep command resumes it), else a new runs/sweep-<preset>-<UTC time>,
    with the exact command that resumes the unfinished one."""
    import time
    from pathlib import Path

    from engine.sweeps.plan import newest_unfinished, resume_command, same_sweep

    found = newest_unfinished(Path(args.runs), args.preset)
    if found is not None:
        path, plan = found
        if same_sweep(plan, args.preset, args.overrides, temps, args.quick, seeds):
            # said even with --quiet: which sweep directory a command writes to is never silent
            print(f"defdistill-engine: resuming the unfinished sweep {path} (pass --sweep-dir to start another)",
                  file=sys.stderr)
            return path
        print(f"defdistill-engine: note: {path} is an unfinished sweep of {args.preset} with other settings; "
              f"resume it with: {resume_command(path, plan)}", file=sys.stderr)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Path(args.runs) / f"sweep-{Path(args.preset).stem}-{stamp}"


def _wait_for_run(run_dir: str) -> None:
    """Block until no engine holds `run_dir` (it finished, stopped or died)."""
    import time

    from engine.record.lock import RunLock

    while RunLock.is_held(run_dir):
        time.sleep(1.0)


def _sweep_step(session, quiet: bool) -> int:
    """One run of a sweep; the sweep prints one summary at the end."""
    from engine.sessions.host import run_to_end

    run_to_end(session, quiet)
    return 0 if session.state == "finished" else 1


def _methods(args: argparse.Namespace) -> list[str] | None:
    """--method as given; --checks alone attacks nothing new (it measures the checks only)."""
    if args.method is None and args.checks and not args.output:
        return []
    return args.method


def _job(args: argparse.Namespace) -> Job:
    """run, resume and attack as the engine process's typed job (engine/sessions/job.py)."""
    from engine.steps.request import AttackRequest

    common = {"data_root": args.data_root, "quiet": args.quiet}
    if args.command == "run":
        return Job("run", preset=args.preset, overrides=tuple(args.overrides), run_dir=args.run_dir,
                   download=args.download, **common)
    if args.command == "resume":
        return Job("resume", run_dir=args.run_dir, **common)
    methods = _methods(args)
    return Job.attack(args.run_dir, AttackRequest(
        models=tuple(args.model) if args.model else None, outputs=tuple(args.output) if args.output else None,
        samples=args.samples, methods=None if methods is None else tuple(methods), checks=args.checks), **common)


def main(argv: Sequence[str] | None = None) -> int:
    linux_only("defdistill-engine")
    args = _parser().parse_args(split_ray_address(list(sys.argv[1:] if argv is None else argv)))
    try:
        return _dispatch(args)
    except UserError as exc:
        print(f"defdistill-engine: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


def _dispatch(args: argparse.Namespace) -> int:
    from engine.presets import available_presets, load_preset

    if args.command in ("run", "resume", "attack"):  # torch is imported by the commands that use it only
        from engine.sessions.host import host

        return host(_job(args))
    if args.command == "presets":
        for name in available_presets():
            print(f"{name:<16} {load_preset(name).description}")
        return 0
    if args.command == "check":
        print(load_preset(args.preset, args.overrides).to_toml(), end="")
        return 0
    if args.command == "ps":
        from engine.sessions.listing import format_runs, list_runs, runs_as_json

        runs = list_runs(args.runs_dir)
        print(json.dumps(runs_as_json(runs), indent=2) if args.json else format_runs(runs))
        return 0
    if args.command == "stop":
        from engine.sessions.listing import stop_run

        print(stop_run(args.run_dir))
        return 0
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "judge":
        from engine.judging.command import judge_command

        return judge_command(args)
    if args.command == "report":
        if args.json:
            from engine.reports.run_figures import result_files

            print(json.dumps({"files": [str(f) for f in result_files(args.path, args.compare)]}))
            return 0
        from engine.reports.report import write_report

        print(write_report(args.path, args.compare))
        return 0
    if args.command == "export-tensorboard":
        from engine.reports.tensorboard_export import export

        logdir, counts = export(args.path, args.logdir)
        print(json.dumps({"logdir": str(logdir), "runs": counts, "view": f"tensorboard --logdir {logdir}"}, indent=2))
        return 0
    if args.command == "verdict":
        from engine.reports.verdicts import fail_on_exit, format_verdicts, verdict_rows

        rows = verdict_rows(args.path)
        if args.json:
            print(json.dumps({"path": str(args.path), "verdicts": dict(rows)}, indent=2))
        else:
            print(format_verdicts(rows, args.long))
        return fail_on_exit(rows, args.fail_on)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
