"""Run directory: resolved preset, events.jsonl, safetensors checkpoints, summary.json.

Every file except the append-only events.jsonl is written to a temporary name and renamed,
so a killed run never leaves a half-written file; a torn last line of events.jsonl is
tolerated on read.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import engine
from engine.errors import CheckpointError, RunDirError
from engine.record.events import SCHEMA_VERSION, BadEvent, Event, ReadReport, RunSummary, parse_lines, payload_from

if TYPE_CHECKING:  # torch is imported where tensors are read or written: listing runs never waits for it
    import torch

PRESET_FILE = "preset.toml"
EVENTS_FILE = "events.jsonl"
SUMMARY_FILE = "summary.json"
META_FILE = "meta.json"
CHECKPOINTS = "checkpoints"
ATTACKS = "attacks"
# What each entry of a run directory must be when it exists, and how to mend it when it is not: a folder
# where a file belongs (or the reverse) is refused before any work starts, never found by a failed write.
_RESTORE = "restore the file from a copy, or start a new run"
LAYOUT: dict[str, tuple[str, str]] = {
    PRESET_FILE: ("file", _RESTORE),
    EVENTS_FILE: ("file", _RESTORE),
    META_FILE: ("file", _RESTORE),
    SUMMARY_FILE: ("file", "move it aside and `defdistill-engine resume RUN` writes it again"),
    CHECKPOINTS: ("folder", "move it aside; `defdistill-engine resume RUN` then trains the phases again"),
    ATTACKS: ("folder", "move it aside; `defdistill-engine attack RUN` then attacks the models again"),
}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode())


def default_run_dir(preset_name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Path("runs") / f"{preset_name}-{stamp}"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class RunDir:
    """One experiment's folder. Creating it checks that it can be written."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    # -- creation -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path | str, preset_toml: str, device: str, extra: dict[str, Any] | None = None) -> RunDir:
        rd = cls(path)
        if (rd.path / EVENTS_FILE).exists():
            raise RunDirError(f"run directory {rd.path} already holds a run; resume it with "
                              f"`defdistill-engine resume {rd.path}` or choose another --run-dir")
        rd.check_layout()
        import torch

        try:
            rd.path.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(rd.path / PRESET_FILE, preset_toml.encode())
            atomic_write_json(rd.path / META_FILE, {
                "defdistill": engine.__version__, "event_schema": SCHEMA_VERSION, "torch": torch.__version__,
                "python": platform.python_version(), "device": device, "git_commit": _git_commit(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "run_id": uuid.uuid4().hex[:12],
                **(extra or {}),
            })
        except OSError as exc:
            raise RunDirError(f"cannot write run directory {rd.path} ({exc.strerror or exc}); "
                              "pass --run-dir with a writable folder") from None
        return rd

    @classmethod
    def open(cls, path: Path | str) -> RunDir:
        rd = cls(path)
        if not (rd.path / PRESET_FILE).exists():
            raise RunDirError(f"{rd.path} is not a run directory (no {PRESET_FILE}); give the folder "
                              "that `defdistill-engine run` created")
        rd.check_layout()
        return rd

    def check_layout(self) -> None:
        """Each entry that exists has the kind the engine reads and writes (checkpoints/ a folder of
        .safetensors files, events.jsonl a file, ...); the first that does not is one RunDirError."""
        entries = [(self.path / name, kind, fix) for name, (kind, fix) in LAYOUT.items()]
        if (self.path / CHECKPOINTS).is_dir():
            entries += [(p, "file", "move it aside; `defdistill-engine resume RUN` then trains that phase again")
                        for p in sorted((self.path / CHECKPOINTS).glob("*.safetensors"))]
        for p, kind, fix in entries:
            if not (p.exists() or p.is_symlink()):
                continue
            if p.is_dir() if kind == "folder" else p.is_file():
                continue
            actual = "a folder" if p.is_dir() else "a broken link" if not p.exists() else "not a regular file" \
                if kind == "file" else "a file"
            raise RunDirError(f"{p} is {actual} where the run keeps a {kind}; {fix.replace('RUN', str(self.path))}")

    # -- events ---------------------------------------------------------------------------
    @property
    def events_path(self) -> Path:
        return self.path / EVENTS_FILE

    def open_event_log(self):
        # A run killed mid-write leaves a torn last line: cut it so the next event starts clean.
        if self.events_path.exists():
            data = self.events_path.read_bytes()
            if data and not data.endswith(b"\n"):
                with open(self.events_path, "rb+") as f:
                    f.truncate(data.rfind(b"\n") + 1)
        # Line-buffered append: each event reaches the file as it happens.
        return open(self.events_path, "a", buffering=1, encoding="utf-8")

    def read_events(self, report: ReadReport | None = None) -> list[Event]:
        return list(iter_events(self.events_path, report))

    # -- checkpoints ----------------------------------------------------------------------
    def checkpoint_path(self, name: str) -> Path:
        return self.path / CHECKPOINTS / f"{name}.safetensors"

    def save_tensors(self, name: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
        from safetensors.torch import save_file

        path = self.checkpoint_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
            save_file(tensors, tmp, metadata={"meta": json.dumps(meta)})
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def load_tensors(self, name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        path = self.checkpoint_path(name)
        if not path.exists():
            return None
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {}).get("meta", "{}"))
            return load_file(str(path)), meta
        except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({exc}); delete it to redo "
                                  "that phase from scratch, or start a new run") from None

    # -- results --------------------------------------------------------------------------
    def write_summary(self, summary: RunSummary) -> None:
        record = summary.to_dict()
        payload_from(RunSummary, record)  # what read_summary will accept, or nothing written (BadEvent)
        atomic_write_json(self.path / SUMMARY_FILE, record)

    def read_summary(self) -> RunSummary | None:
        """summary.json as the RunSummary it holds, checked field by field; None if the run has none yet."""
        path = self.path / SUMMARY_FILE
        fix = f"delete it and run `defdistill-engine resume {self.path}` to rebuild it"
        data = read_json(path, fix)
        if data is None:
            return None
        try:
            return payload_from(RunSummary, data)
        except BadEvent as exc:
            raise RunDirError(f"{path} has the wrong shape ({exc}); {fix}") from None

    def read_preset_toml(self) -> str:
        path = self.path / PRESET_FILE
        try:
            return path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise RunDirError(f"{path} is damaged (not UTF-8 text); restore it from a copy or start a new run") \
                from None
        except IsADirectoryError:
            raise RunDirError(f"{path} is a folder where the run keeps a file; {_RESTORE}") from None
        except OSError as exc:
            raise RunDirError(f"cannot read {path} ({exc.strerror or exc}); restore it or start a new run") from None


def read_json(path: Path, fix: str) -> Any:
    """A JSON file of a run or sweep directory; None if absent. A damaged one is a RunDirError
    that names the file and `fix`."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise RunDirError(f"{path} is a folder where the run keeps a file; {fix}") from None
    except OSError as exc:
        raise RunDirError(f"cannot read {path} ({exc.strerror or exc}); check its permissions") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise RunDirError(f"{path} is damaged (not UTF-8 text); {fix}") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise RunDirError(f"{path} is damaged (not JSON: {str(exc)[:80]}); {fix}") from None


def iter_events(path: Path, report: ReadReport | None = None) -> Iterator[Event]:
    """Events in a log. A torn last line (a run killed mid-write) is left for the writer; lines
    nobody can use (binary, not JSON, the wrong shape, a newer version's type) are skipped and
    counted in `report`."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise RunDirError(f"{path} is a folder where the run keeps a file; {_RESTORE}") from None
    except OSError as exc:
        raise RunDirError(f"cannot read {path} ({exc.strerror or exc}); check its permissions") from None
    complete = data[: data.rfind(b"\n") + 1]
    yield from parse_lines(complete.split(b"\n"), report)


def preset_and_meta(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    from engine.presets import preset_from_toml

    preset = preset_from_toml(RunDir(run_dir).read_preset_toml(), str(run_dir / "preset.toml"))
    meta = read_json(run_dir / "meta.json", "it only labels the report: delete it to go on without it") or {}
    if not isinstance(meta, dict):
        raise RunDirError(f"{run_dir / 'meta.json'} has the wrong shape (not an object); it only labels the report: "
                          "delete it to go on without it")
    return preset.model_dump(mode="json"), meta
