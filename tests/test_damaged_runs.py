"""Damaged run directories, every command: one line naming the file and the fix, exit 2, never a
traceback; `ps` lists a damaged run as unreadable and the others normally."""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from engine.cli import main
from engine.errors import UserError
from engine.runs.lock import LOCK_FILE
from tui.__main__ import build_session


def _garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 4)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


WRONG_SHAPE = {
    "events.jsonl": b'{"type": "batch", "seq": 1, "time": 0, "data": {"phase": 3}}\n[1, 2]\n{"type": "from_v9"}\n',
    "summary.json": b'{"accuracy": 0.5, "preset": []}',
    "meta.json": b"[1, 2, 3]",
    "preset.toml": b"name = 5\n[training]\nepochs = 'many'\n",
}
DAMAGES = {
    "missing": lambda p: p.unlink(),
    "truncated": _truncate,
    "garbage": _garbage,
    "wrong shape": lambda p: (p.write_bytes(WRONG_SHAPE[p.name]) if p.name in WRONG_SHAPE else
                              save_file({"model.nothing": torch.zeros(3)}, str(p), metadata={"meta": "{}"})),
}
COMMANDS = {  # file -> the commands that read it
    "events.jsonl": ["resume", "attack", "ps", "open", "attach"],
    "summary.json": ["resume", "attack", "report", "ps"],
    "meta.json": ["report", "ps"],
    "preset.toml": ["resume", "attack", "report", "stop", "open", "attach"],
    "checkpoints/student.safetensors": ["attack"],
}


def _cli(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))  # an exception escaping here is a traceback for the user: the test fails
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, err.getvalue()


def _run(command: str, run: Path) -> tuple[int, str]:
    if command in ("open", "attach"):
        try:
            session = build_session(argparse.Namespace(open_dir=str(run) if command == "open" else None,
                                                       attach=str(run) if command == "attach" else None, runs="runs"))
        except UserError as exc:
            return 2, f"defdistill-tui: error: {exc}"
        session.start()
        session.wait(2)
        session.close()
        return 0, " | ".join(session.problems())  # what the dashboard shows in its log and as a notification
    if command == "ps":
        return _cli("ps", str(run.parent))
    if command == "attack":
        return _cli("attack", str(run), "--model", "student", "--output", "softmax", "--samples", "1", "--quiet")
    return _cli(command, str(run), *(["--quiet"] if command == "resume" else []))


@pytest.mark.slow
def test_every_command_on_every_damaged_file_is_one_line_or_works(trained_run, tmp_path):
    table = []
    for rel, commands in COMMANDS.items():
        for damage, apply in DAMAGES.items():
            runs = tmp_path / f"{rel.replace('/', '_')}-{damage.replace(' ', '_')}"
            healthy = runs / "healthy"
            shutil.copytree(trained_run.run_dir, healthy, ignore=shutil.ignore_patterns(LOCK_FILE))
            for command in commands:
                run = runs / "damaged"
                shutil.rmtree(run, ignore_errors=True)
                shutil.copytree(trained_run.run_dir, run, ignore=shutil.ignore_patterns(LOCK_FILE))
                apply(run / rel)
                code, err = _run(command, run)
                lines = [ln for ln in err.splitlines() if ln.strip() and "warning:" not in ln]
                table.append((rel, damage, command, code, lines[0] if lines else err.strip()[:200]))
                assert "Traceback" not in err, (rel, damage, command, err)
                assert code in (0, 2), (rel, damage, command, code, err)
                if code == 2:
                    assert len(lines) == 1, (rel, damage, command, err)
                if command == "ps":
                    listing = _cli_stdout("ps", str(runs))
                    assert code == 0 and "healthy" in listing, (rel, damage)
                    if rel == "events.jsonl" and damage == "garbage":
                        assert "unreadable" in listing, listing
                if command in ("open", "attach") and damage in ("garbage", "wrong shape") and rel == "events.jsonl":
                    assert "skipped" in err, err  # the dashboard says so instead of "starting" forever
    print("\n| file | damage | command | exit | what it prints |\n|---|---|---|---|---|")
    for rel, damage, command, code, line in table:
        print(f"| {rel} | {damage} | {command} | {code} | {line.replace('|', '/')[:230]} |")


def _cli_stdout(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        main(list(args))
    return out.getvalue()
