"""The local command channel of an engine process: a Unix socket in the run directory, 0600,
answering only processes of the same user (checked again per connection with SO_PEERCRED).

One JSON object per line each way: {"cmd": "pause" | "resume" | "stop" | "set_temperature" |
"attack", "args": {...}} -> {"ok": true} or {"ok": false, "error": "one line"}.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import tempfile
import threading
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.record.lock import process_alive
from engine.steps.request import AttackRequest

SOCKET_NAME = "control.sock"
PID_FILE = "engine.pid"
_MAX_UNIX_PATH = 100  # sun_path holds 108 bytes on Linux


class ChannelError(UserError):
    pass


def socket_path(run_dir: Path) -> Path:
    """control.sock in the run directory, or, when that path is too long for a Unix socket, a
    short private path derived from it (the same on both ends)."""
    path = Path(run_dir).resolve() / SOCKET_NAME
    if len(str(path)) <= _MAX_UNIX_PATH:
        return path
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"defdistill-{os.getuid()}-{digest}.sock"


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


class CommandServer:
    """Serves one session's commands until closed."""

    def __init__(self, run_dir: Path, session: Any) -> None:
        self.session = session
        self.path = socket_path(run_dir)
        self.path.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is born 0600: no window where others could connect
        try:
            self._sock.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self._sock.listen(8)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="defdistill-channel", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                try:
                    reply = self._handle(conn)
                except Exception as exc:  # a bad client must not take the engine down
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                try:
                    conn.sendall((json.dumps(reply) + "\n").encode())
                except OSError:
                    pass

    def _handle(self, conn: socket.socket) -> dict[str, Any]:
        conn.settimeout(5)
        data = b""
        while not data.endswith(b"\n") and len(data) < 1 << 20:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        # read first, then refuse: the caller gets an answer, not a broken pipe
        if _peer_uid(conn) != os.getuid():
            return {"ok": False, "error": "refused: commands are accepted from the run's owner only"}
        msg = json.loads(data or b"{}")
        cmd, args = msg.get("cmd"), msg.get("args", {})
        s = self.session
        try:
            if cmd == "pause":
                s.pause()
            elif cmd == "resume":
                s.resume()
            elif cmd == "stop":
                s.stop()
            elif cmd == "set_temperature":
                return {"ok": True, "temperature": s.set_temperature(args["temperature"])}
            elif cmd == "attack":
                s.attack(AttackRequest.from_dict(args))
            elif cmd == "state":
                return {"ok": True, "state": s.state}
            else:
                return {"ok": False, "error": f"unknown command {cmd!r}"}
        except UserError as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True}

    def close(self) -> None:
        self._closed.set()
        try:
            self._sock.close()
        finally:
            self.path.unlink(missing_ok=True)


def send(run_dir: Path, cmd: str, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
    """Send one command to the engine serving `run_dir`; a one-line ChannelError if it cannot."""
    path = socket_path(run_dir)
    if not path.exists():
        raise ChannelError(f"no engine is serving {run_dir} (no {SOCKET_NAME}); it has ended: "
                           f"`defdistill-engine resume {run_dir}` continues it")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            sock.sendall((json.dumps({"cmd": cmd, "args": args}) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            raise ChannelError(f"cannot reach the engine of {run_dir} ({exc.strerror or exc}); is it still "
                               f"running? `defdistill-engine ps` says") from None
    reply = json.loads(data or b'{"ok": false, "error": "no reply"}')
    if not reply.get("ok"):
        raise ChannelError(reply.get("error", "refused"))
    return reply


def write_pid(run_dir: Path) -> None:
    from engine.record.rundir import atomic_write_bytes

    atomic_write_bytes(Path(run_dir) / PID_FILE, str(os.getpid()).encode())


def engine_pid(run_dir: Path) -> int | None:
    """The pid the run's engine wrote (it may have ended since); None if unreadable."""
    try:
        return int((Path(run_dir) / PID_FILE).read_bytes().strip())
    except (OSError, ValueError):
        return None


def engine_alive(run_dir: Path) -> bool:
    """An engine serves the run: its pid is alive and its command socket is there (the pid file stays
    after an engine ends, and a pid can be reused by an unrelated process, or be this very process when
    an earlier engine ran in it)."""
    pid = engine_pid(run_dir)
    return pid is not None and pid > 0 and process_alive(pid) and socket_path(run_dir).exists()
