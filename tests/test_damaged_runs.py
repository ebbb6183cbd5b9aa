"""Damaged run directories, every command: one line naming the file and the fix, exit 2, never a
traceback, and nothing of the run changed; `ps` lists a damaged run as unreadable and the others
normally. A folder where a file belongs (or a file where a folder belongs) is refused before any work
starts, on a finished run and on one that still has phases to train."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from engine.cli import main
from engine.errors import UserError
from engine.record.lock import LOCK_FILE
from engine.sessions.channel import PID_FILE
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

def _folder_in_place(path: Path) -> None:
    path.unlink()
    (path / "stray").mkdir(parents=True)


def _file_in_place(path: Path) -> None:
    shutil.rmtree(path)
    path.write_bytes(b"not a folder\n")


KIND_DAMAGES = {"a folder in its place": _folder_in_place}
FOLDER_DAMAGES = {"a file in its place": _file_in_place}
COMMANDS = {  # file -> the commands that read it
    "events.jsonl": ["resume", "attack", "ps", "open", "attach"],
    "summary.json": ["resume", "attack", "report", "ps"],
    "meta.json": ["report", "ps"],
    "preset.toml": ["resume", "attack", "report", "stop", "open", "attach"],
    "checkpoints/student.safetensors": ["attack"],
}
# Folders, and files that become folders: the commands that would write into the run
LAYOUT_COMMANDS = {
    "checkpoints": ["resume", "attack", "run", "open", "ps"],
    "attacks": ["resume", "attack"],
    "events.jsonl": ["resume", "attack", "open", "ps"],
    "summary.json": ["resume", "attack", "report"],
    "preset.toml": ["resume", "attack", "open"],
    "checkpoints/student.safetensors": ["resume", "attack"],
}
UNTOUCHED = (LOCK_FILE, PID_FILE)  # the lock a refused engine tried, the pid file of none


def _snapshot(run: Path) -> dict[str, str]:
    """Every entry of a run directory and a digest of each file's bytes."""
    out = {}
    for p in sorted(run.rglob("*")):
        if p.name in UNTOUCHED:
            continue
        out[str(p.relative_to(run))] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
    return out


def _interrupted(finished: Path, dst: Path) -> Path:
    """The finished run as it was when its engine died in the student phase: no summary, no student."""
    run = shutil.copytree(finished, dst, ignore=shutil.ignore_patterns(*UNTOUCHED))
    (run / "summary.json").unlink()
    (run / "checkpoints" / "student.safetensors").unlink()
    shutil.rmtree(run / "attacks", ignore_errors=True)
    lines = (run / "events.jsonl").read_bytes().splitlines(keepends=True)
    end = next(i for i, ln in enumerate(lines) if b'"phase_started"' in ln and b'"student"' in ln)
    (run / "events.jsonl").write_bytes(b"".join(lines[:end]))
    return run


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
        return _cli("attack", str(run), "--model", "student", "--output", "softmax", "--method", "jsma",
                    "--samples", "1", "--quiet")
    if command == "run":
        return _cli("run", "digits", "--run-dir", str(run), "--quiet")
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
                before = _snapshot(run)
                code, err = _run(command, run)
                lines = [ln for ln in err.splitlines() if ln.strip() and "warning:" not in ln]
                table.append((rel, damage, command, code, lines[0] if lines else err.strip()[:200]))
                assert "Traceback" not in err, (rel, damage, command, err)
                assert code in (0, 2), (rel, damage, command, code, err)
                if code == 2:
                    assert len(lines) == 1, (rel, damage, command, err)
                    assert _snapshot(run) == before, (rel, damage, command, "refused, yet the run changed")
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


@pytest.mark.parametrize("state", ["finished", "interrupted"])
def test_a_folder_where_a_file_belongs_is_refused_before_any_work(trained_run, tmp_path, state):
    """The run directory's layout is checked first: e.g. checkpoints/ as a file once made `resume` train a
    phase again and then fail with FileExistsError, exit 1."""
    table = []
    for rel, commands in LAYOUT_COMMANDS.items():
        damages = FOLDER_DAMAGES if rel in ("checkpoints", "attacks") else KIND_DAMAGES
        for damage, apply in damages.items():
            for command in commands:
                run = tmp_path / "damaged"
                shutil.rmtree(run, ignore_errors=True)
                if state == "finished":
                    shutil.copytree(trained_run.run_dir, run, ignore=shutil.ignore_patterns(*UNTOUCHED))
                else:
                    _interrupted(trained_run.run_dir, run)
                target = run / rel
                if not (target.exists() or rel == "attacks"):
                    continue  # the interrupted run has no student checkpoint to damage
                if rel == "attacks" and not target.exists():
                    target.mkdir()
                apply(target)
                if command == "run":  # a new run into a folder that holds only the damaged entry
                    for other in run.iterdir():
                        if other.name != rel:
                            shutil.rmtree(other) if other.is_dir() else other.unlink()
                before = _snapshot(run)
                code, err = _run(command, run)
                lines = [ln for ln in err.splitlines() if ln.strip() and "warning:" not in ln]
                table.append((rel, damage, command, code, lines[0] if lines else ""))
                assert "Traceback" not in err, (state, rel, command, err)
                if command in ("ps", "open"):  # readers: a listing or a dashboard that says what it cannot read
                    assert code in (0, 2), (state, rel, command, code, err)
                    continue
                assert code == 2 and len(lines) == 1, (state, rel, damage, command, code, err)
                assert str(target) in lines[0] and ("a folder" in lines[0] or "a file" in lines[0]), lines[0]
                assert _snapshot(run) == before, (state, rel, command, "refused, yet the run changed")
    print(f"\n| file ({state} run) | damage | command | exit | what it prints |\n|---|---|---|---|---|")
    for rel, damage, command, code, line in table:
        print(f"| {rel} | {damage} | {command} | {code} | {line.replace('|', '/')[:230]} |")


def _cli_stdout(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        main(list(args))
    return out.getvalue()
