"""defdistill-tui [PRESET]: the dashboard. Bad input is one line and exit 2 before the UI starts."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from engine.errors import EXIT_USER_ERROR, UserError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="defdistill-tui", description="Watch and steer a defensive distillation run.")
    p.add_argument("preset", nargs="?", default="digits", help="preset name or .toml path (default: digits)")
    p.add_argument("--run-dir", help="where results go (default runs/<preset>-<UTC time>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--data-root")
    p.add_argument("--download", action="store_true")
    p.add_argument("--open", dest="open_dir", metavar="RUN_DIR",
                   help="watch an existing run directory read-only (follows it while it is written)")
    return p


def build_session(args: argparse.Namespace):
    if args.open_dir:
        from engine.replay import ReplaySession

        return ReplaySession(args.open_dir)
    from engine.presets import load_preset
    from engine.session import ThreadSession

    preset = load_preset(args.preset, args.overrides)
    return ThreadSession.create(preset, args.run_dir, data_root=args.data_root,
                                download=True if args.download else None)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        session = build_session(args)
    except UserError as exc:
        print(f"defdistill-tui: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    from tui.app import DefdistillApp

    DefdistillApp(session).run()
    if session.state == "stopped":
        print(f"stopped; continue with: defdistill-engine resume {session.run_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
