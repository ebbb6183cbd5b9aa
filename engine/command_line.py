"""What both command lines share (defdistill-engine and defdistill-tui): one-line usage errors with
exit 2, --version without importing torch, Linux-only, shell completion, the preset argument.
Torch-free, so the dashboard's start stays light."""

from __future__ import annotations

import argparse
import platform
import sys
from typing import NoReturn

from engine.errors import EXIT_USER_ERROR


class OneLineParser(argparse.ArgumentParser):
    """argparse's usage errors as one line and exit 2, like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message[:300]}; see `{self.prog} --help`\n")


def version_line(prog: str) -> str:
    """`--version`: this package, and the torch a result would be measured with (read from the installed
    package's metadata: asking the version never waits for torch to import)."""
    from importlib.metadata import PackageNotFoundError, version

    import engine

    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "not installed"
    return (f"{prog} {engine.__version__} (torch {torch_version}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.machine()})")


def linux_only(prog: str) -> None:
    """One line and exit 2 on another system: run locks (fcntl.flock), the command channel's caller check
    (SO_PEERCRED) and the engine's liveness (/proc) are Linux's."""
    if not sys.platform.startswith("linux"):
        print(f"{prog}: error: Linux only (it relies on fcntl locks, SO_PEERCRED and /proc), and this is "
              f"{sys.platform}; run it on a Linux machine, or in WSL2 on Windows", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)


def add_completion(parser: argparse.ArgumentParser) -> None:
    """`--print-completion bash|zsh|tcsh` (shtab): a static script, preset names included."""
    import shtab

    shtab.add_argument_to(parser, ["--print-completion"], preamble=completion_preamble(),
                          help=f"print a shell completion script and exit, e.g. `{parser.prog} --print-completion "
                          f"bash > ~/.local/share/bash-completion/completions/{parser.prog}`")


# Preset arguments complete to the shipped preset names (and .toml files); run directories to folders.
PRESET_COMPLETION = {"bash": "_defdistill_presets", "zsh": "_files -g '*.toml'", "tcsh": "f"}
RUN_DIR_COMPLETION = {"bash": "_shtab_compgen_dirs", "zsh": "_files -/", "tcsh": "d"}


def completion_preamble() -> dict[str, str]:
    from engine.presets import available_presets

    names = " ".join(available_presets())
    return {"bash": f"""
_defdistill_presets() {{
  compgen -W "{names}" -- "$1"
  compgen -f -X '!*.toml' -- "$1"
}}
"""}


def preset_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("preset", nargs="?", default="digits",
                   help="preset name (see `defdistill-engine presets`) or a .toml path (default: digits)"
                   ).complete = PRESET_COMPLETION


def run_dir_argument(p: argparse.ArgumentParser, name: str, help: str) -> None:
    p.add_argument(name, help=help).complete = RUN_DIR_COMPLETION
