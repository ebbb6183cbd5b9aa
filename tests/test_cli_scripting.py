"""The commands as a script or a shell uses them: versions, `python -m engine`, `ps --json`, `--ray`
beside a preset, help on every argument, shell completion, Linux only, notices and attack labels in
headless progress. None of these trains anything."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys

import pytest

import engine
from conftest import ROOT, assert_one_line_error
from engine.cli import _parser, main, split_ray_address
from engine.record.events import AttackStarted, Event, Notice
from engine.sessions.progress import HeadlessProgress
from scripted import write_run
from tui.__main__ import _parser as tui_parser
from tui.__main__ import main as tui_main


@pytest.mark.parametrize("entry", [main, tui_main], ids=["engine", "tui"])
def test_version_names_the_package_torch_and_python(entry, capsys):
    with pytest.raises(SystemExit) as exc:
        entry(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f" {engine.__version__} (torch " in out and "Python 3." in out, out


def test_python_dash_m_engine_is_the_engine_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "engine", "--version"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("defdistill-engine "), proc
    proc = subprocess.run([sys.executable, "-m", "engine", "presets"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=60)
    assert proc.returncode == 0 and "digits" in proc.stdout, proc


def test_ps_json_is_a_list_with_the_documented_shape(tmp_path, capsys):
    write_run(tmp_path / "runs" / "a", "finished")
    write_run(tmp_path / "runs" / "b", "paused")
    assert main(["ps", str(tmp_path / "runs"), "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [sorted(r) for r in runs] == [["path", "phase", "preset", "progress", "state", "updated", "updated_utc"]] * 2
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in runs}
    # no engine holds either run: the finished one is finished, the paused one was left without its engine
    assert by_name["a"]["state"] == "finished" and by_name["b"]["state"] == "interrupted", by_name
    assert by_name["a"]["preset"] == "digits" and isinstance(by_name["a"]["updated"], float)
    assert by_name["a"]["updated_utc"].endswith("Z")
    assert main(["ps", str(tmp_path / "none"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize(("argv", "ray", "preset"), [
    (["sweep", "--ray", "mnist"], "local", "mnist"),
    (["sweep", "--ray", "presets/x.toml"], "local", "presets/x.toml"),
    (["sweep", "mnist", "--ray"], "local", "mnist"),
    (["sweep", "--ray", "auto", "mnist"], "auto", "mnist"),
    (["sweep", "--ray", "10.0.0.1:6379", "mnist"], "10.0.0.1:6379", "mnist"),
    (["sweep", "--ray", "ray://head:10001"], "ray://head:10001", "digits"),
    (["sweep", "--ray", "--quick", "mnist"], "local", "mnist"),
])
def test_ray_takes_an_address_and_never_the_preset(argv, ray, preset):
    args = _parser().parse_args(split_ray_address(argv))
    assert (args.ray, args.preset) == (ray, preset)


def _actions(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _actions(sub)
        else:
            yield parser.prog, action


@pytest.mark.parametrize("parser", [_parser, tui_parser], ids=["engine", "tui"])
def test_every_argument_has_help_text(parser):
    missing = [f"{prog} {'/'.join(a.option_strings) or a.dest}" for prog, a in _actions(parser())
               if not (a.help and a.help.strip())]
    assert not missing, missing


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completion_completes_commands_and_preset_names(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--print-completion", "bash"])
    script = tmp_path / "complete.sh"
    script.write_text(capsys.readouterr().out)

    def complete(*words: str) -> list[str]:
        line = " ".join(words)
        code = (f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; COMP_LINE='{line}'; "
                f"COMP_POINT={len(line)}; _shtab_defdistill_engine; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
        out = subprocess.run(["bash", "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=30)
        return out.stdout.split()

    assert complete("defdistill-engine", "sw") == ["sweep"]
    assert complete("defdistill-engine", "run", "mnist-") == ["mnist-t10k"]
    assert "--json" in complete("defdistill-engine", "ps", "--")


@pytest.mark.parametrize("entry", [main, tui_main], ids=["engine", "tui"])
def test_another_system_is_one_line_saying_linux_only(entry, monkeypatch, capsys):
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(SystemExit) as exc:
        entry(["presets"])
    err = capsys.readouterr().err
    assert_one_line_error(subprocess.CompletedProcess([], exc.value.code, "", err), "Linux only", "darwin")


def test_headless_progress_prints_notices_and_names_each_attack(capsys):
    progress = HeadlessProgress()
    with progress:
        progress(Event(1, 0.0, Notice(text="device auto: cpu (no CUDA device)")))
        for method, output in (("jsma", "softmax_T"), ("cw_l2", "logits"), ("simba", "deployed log-scores")):
            progress(Event(2, 0.0, AttackStarted(key=f"student-{method}", model="student", output=output,
                                                 n_attacks=9, samples=1, output_temperature=None, method=method)))
    err = capsys.readouterr().err
    assert "note: device auto: cpu (no CUDA device)" in err
    for label in ("jsma student softmax_T", "cw_l2 student logits", "simba student deployed log-scores"):
        assert label in err, err


def test_the_readme_shows_the_shape_ps_json_prints(tmp_path, capsys):
    """The README's example of `ps --json` has the keys the command prints, and its states are the ones
    the listing knows."""
    readme = (ROOT / "README.md").read_text()
    example = json.loads(re.search(r"`ps --json` prints.*?```json\n(.*?)```", readme, re.S)[1])
    write_run(tmp_path / "runs" / "a", "finished")
    assert main(["ps", str(tmp_path / "runs"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert sorted(example[0]) == sorted(printed[0])
    for state in ("running", "paused", "finished", "failed", "stopped", "interrupted", "starting", "unreadable"):
        assert state in readme.split("`ps --json` prints", 1)[1][:1500], state
