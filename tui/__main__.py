"""defdistill-tui [PRESET]: the dashboard. Bad input is one line and exit 2 before the UI starts."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from engine.client import (
    EXIT_USER_ERROR,
    RUN_DIR_COMPLETION,
    OneLineParser,
    Session,
    UserError,
    add_completion,
    linux_only,
    preset_argument,
    version_line,
)


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="defdistill-tui", description="Watch and steer a defensive distillation run (Linux only).")
    p.add_argument("--version", action="version", version=version_line("defdistill-tui"),
                   help="print the version (with torch's and Python's) and exit")
    add_completion(p)
    preset_argument(p)
    p.add_argument("--run-dir", metavar="DIR", help="where results go (default runs/<preset>-<UTC time>)"
                   ).complete = RUN_DIR_COMPLETION
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a preset field, e.g. --set distillation.temperature=20 (repeatable)")
    p.add_argument("--data-root", metavar="DIR", help="folder holding the datasets (overrides the preset's data.root)"
                   ).complete = RUN_DIR_COMPLETION
    p.add_argument("--download", action="store_true",
                   help="allow torchvision to download the dataset (never done otherwise)")
    p.add_argument("--open", dest="open_dir", metavar="RUN_DIR",
                   help="watch an existing run directory read-only (follows it while it is written)"
                   ).complete = RUN_DIR_COMPLETION
    p.add_argument("--attach", nargs="?", const="", metavar="RUN_DIR",
                   help="attach to a run (running: live and steerable; finished: its results); "
                        "without RUN_DIR, pick one from the runs under --runs").complete = RUN_DIR_COMPLETION
    p.add_argument("--runs", default="runs", metavar="DIR", help="where --attach looks for runs (default: runs)"
                   ).complete = RUN_DIR_COMPLETION
    p.add_argument("--in-process", action="store_true",
                   help="run the engine inside the dashboard's process (it then ends with the dashboard)")
    p.add_argument("--serve", action="store_true",
                   help="the dashboard in a browser (textual-serve): prints a URL with a random token")
    p.add_argument("--host", default="127.0.0.1", help="with --serve: the address to bind (default 127.0.0.1 only)")
    p.add_argument("--port", type=int, default=8000, help="with --serve: the port (default 8000)")
    p.add_argument("--public-url", help="with --serve: the address the browser uses, e.g. http://localhost:9000 "
                   "behind `ssh -L 9000:127.0.0.1:8000 HOST`")
    return p


def _pick_run(runs_dir: str) -> str:
    from engine.client import format_runs, list_runs

    runs = list_runs(runs_dir)
    if not runs:
        raise UserError(f"no runs under {runs_dir}/; start one with `defdistill-tui` or pass --runs")
    runs.sort(key=lambda r: r.updated, reverse=True)
    table = format_runs(runs).splitlines()
    print("    " + table[0])
    for i, line in enumerate(table[1:], 1):
        print(f"{i:>3} {line}")
    choice = input("attach to which run? [1] ").strip() or "1"
    if not choice.isdigit() or not 1 <= int(choice) <= len(runs):
        raise UserError(f"{choice!r} is not one of the numbers 1..{len(runs)}")
    return str(runs[int(choice) - 1].path)


def build_session(args: argparse.Namespace) -> Session:
    from engine import client

    if args.open_dir:
        return client.replay(args.open_dir)
    if args.attach is not None:
        return client.attach(args.attach or _pick_run(args.runs))
    start = client.in_process if args.in_process else client.launch
    return start(args.preset, args.overrides, args.run_dir, data_root=args.data_root, download=args.download)


def _serve(args: argparse.Namespace) -> int:
    """Serve the run in a browser; the engine is a process of its own, so it outlives the server."""
    from pathlib import Path

    from tui.serve import serve

    if args.in_process:
        raise UserError("--serve runs each browser tab's dashboard as a process of its own; drop --in-process")
    if args.open_dir:
        raise UserError("--serve with --open is not offered; serve the run with --attach RUN_DIR")
    session = build_session(args)
    target = Path(args.attach) if args.attach else Path(session.run_dir)
    session.close()
    serve(target, host=args.host, port=args.port, public_url=args.public_url)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    linux_only("defdistill-tui")
    args = _parser().parse_args(argv)
    try:
        if args.serve:
            return _serve(args)
        session = build_session(args)
    except UserError as exc:
        print(f"defdistill-tui: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    from tui.app import DefdistillApp

    DefdistillApp(session).run()
    state = session.state
    if state == "stopped":
        print(f"stopped; continue with: defdistill-engine resume {session.run_dir}", file=sys.stderr)
    elif state in ("running", "paused") and session.detachable:
        print(f"the run goes on; watch it again with: defdistill-tui --attach {session.run_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
