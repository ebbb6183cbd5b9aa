"""One engine per run (or sweep) directory: an exclusive lock on a file in it.

`flock` belongs to the open file, so the kernel drops it when the process that holds it dies
(SIGKILL, OOM, power loss in a VM): a stale lock file from a dead engine never blocks a resume.
The holder's pid and command are written into the file only to name it in the refusal.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.errors import RunDirError

LOCK_FILE = "engine.lock"


class RunLock:
    """Held from `acquire` until `release` or the end of the process."""

    def __init__(self, folder: Path, fd: int) -> None:
        self.folder = folder
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, folder: str | Path, what: str = "run") -> RunLock:
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            flag = "--run-dir" if what == "run" else "--sweep-dir"
            raise RunDirError(f"cannot write {what} directory {folder} ({exc.strerror or exc}); "
                              f"pass {flag} with a writable folder") from None
        if not _lock_or_wait_for_the_dead(fd):
            holder = _holder(fd)
            os.close(fd)
            hint = (f"watch it with `defdistill-tui --attach {folder}` or stop it with "
                    f"`defdistill-engine stop {folder}`") if what == "run" else \
                "wait for it to end, or choose another --sweep-dir"
            raise RunDirError(f"{what} directory {folder} is in use by another engine ({holder}); {hint}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}: "
                     f"{' '.join(os.path.basename(a) for a in sys.argv[:3])}\n".encode())
        return cls(folder, fd)

    @staticmethod
    def is_held(folder: str | Path) -> bool:
        """Whether a live engine holds `folder` now (never creates anything)."""
        try:
            fd = os.open(Path(folder) / LOCK_FILE, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except OSError:
            return True
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor of the open file drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:  # a session dropped without running must not keep its directory locked
        self.release()

    @property
    def held(self) -> bool:
        return self._fd is not None


def _lock_or_wait_for_the_dead(fd: int, grace: float = 10.0) -> bool:
    """Take the lock; when a holder that has died still has it, wait for the kernel to drop it. A killed
    engine's main thread is a zombie before its last thread has exited and closed its files, so a
    `resume` right after a crash would otherwise be refused by an engine that no longer runs."""
    deadline = time.monotonic() + grace
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            pid = _holder_pid(fd)
            if pid is None or process_alive(pid) or time.monotonic() > deadline:
                return False
            time.sleep(0.05)


def _holder_pid(fd: int) -> int | None:
    text = _holder(fd)
    try:
        return int(text.split()[1]) if text.startswith("pid ") else None
    except (IndexError, ValueError):
        return None


def process_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process, or no /proc: assume it lives


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text[:120] or "pid unknown"


@contextmanager
def handed_over(folder: str | Path, what: str = "run") -> Iterator[RunLock]:
    """The lock of `folder` for a session being built: released when the building fails (an error said
    before any work), kept for the session when it succeeds."""
    lock = RunLock.acquire(folder, what)
    try:
        yield lock
    except BaseException:
        lock.release()
        raise
