"""The engine process: one Job (run, resume or attack a run directory) carried out to its end.

    python -m engine.sessions.host JOB_JSON

is the documented entry point an engine process is started by (engine/sessions/job.py builds it);
`defdistill-engine run|resume|attack` parse their arguments into the same Job and call `host`.
While the session works, the run's command channel (a 0600 Unix socket) takes steering commands
and engine.pid names this process; Ctrl-C, SIGTERM or `stop` on the channel stop it cleanly with
a checkpoint, and a dropped terminal (SIGHUP) does not stop it. Exit codes: 0 finished, 1 failed,
2 a user error (one line), 130 stopped.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Sequence
from typing import Any

from engine.command_line import linux_only
from engine.errors import EXIT_USER_ERROR, UserError
from engine.presets import load_preset
from engine.record.events import RunSummary
from engine.sessions.channel import CommandServer, engine_alive, send, write_pid
from engine.sessions.job import Job
from engine.sessions.progress import HeadlessProgress, quiet_printer
from engine.sessions.session import Session
from engine.sessions.thread_session import ThreadSession

EXIT_STOPPED = 130


def open_job(job: Job) -> ThreadSession:
    """The session that carries out `job` (every problem with its input raised here, before any work)."""
    if job.command == "run":
        preset = load_preset(job.preset, list(job.overrides))
        return ThreadSession.create(preset, job.run_dir, data_root=job.data_root,
                                    download=True if job.download else None)
    if job.command == "resume":
        return ThreadSession.resume_from(job.run_dir, data_root=job.data_root)
    return ThreadSession.for_attack(job.run_dir, job.request, data_root=job.data_root)


def host(job: Job) -> int:
    """Carry out `job` in this process; the exit code and one line say how it ended."""
    if job.command == "attack" and engine_alive(job.run_dir):  # the live engine owns the directory
        send(job.run_dir, "attack", **job.request.to_dict())
        print(f"queued on the engine running {job.run_dir}; watch it with `defdistill-tui --attach {job.run_dir}`")
        return 0
    return follow(open_job(job), job.quiet)


def run_to_end(session: Session, quiet: bool) -> None:
    """Start the session and wait for its end with progress; Ctrl-C (or SIGTERM, or `stop` on the
    command channel) stops it cleanly with a checkpoint. A dropped terminal (SIGHUP) does not."""
    for problem in session.problems():  # said once, before any progress
        print(f"defdistill-engine: warning: {problem}", file=sys.stderr)
    progress = None if quiet else HeadlessProgress()
    session.subscribe(quiet_printer if progress is None else progress)
    if progress is not None:
        progress.__enter__()
    server = CommandServer(session.run_dir, session)
    write_pid(session.run_dir)
    # restored on the way out: a caller running several sessions in one process (a sweep, the tests)
    # must not be left ignoring SIGHUP, nor pass that on to the processes it starts
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGHUP, signal.SIGTERM)}
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: session.stop())
    session.start()
    try:
        while not session.wait(0.5):
            pass
    except KeyboardInterrupt:
        session.stop()
        session.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.close()
        if progress is not None:
            progress.__exit__(None, None, None)


def follow(session: ThreadSession, quiet: bool, headline_out: bool = True) -> int:
    """Run the session to its end; the exit code and one line say how it ended (`headline_out`: and the
    run's headline numbers as JSON on stdout, which a caller printing its own result leaves out)."""
    run_to_end(session, quiet)
    if session.state == "failed":
        print(f"defdistill-engine: {'error' if session.user_error else 'run failed'}: {session.error}",
              file=sys.stderr)
        return EXIT_USER_ERROR if session.user_error else 1
    if session.state == "stopped":
        print(f"stopped; continue with: defdistill-engine resume {session.run_dir}", file=sys.stderr)
        return EXIT_STOPPED
    if not headline_out:
        return 0
    summary = session.rundir.read_summary()
    print(json.dumps({"run_dir": str(session.run_dir), **headline(summary)}, indent=2))
    return 0


def headline(summary: RunSummary | None) -> dict[str, Any]:
    """The few numbers a finished headless run prints: accuracy, logit size, saturation, attacks, seconds."""
    if summary is None:
        return {}
    record = summary.to_dict()
    keys = ("accuracy", "mean_abs_logit", "saturated_share", "attacks", "seconds")
    return {k: record[k] for k in keys if k in record}


def main(argv: Sequence[str] | None = None) -> int:
    linux_only("defdistill-engine")
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if len(args) != 1:
            raise UserError("python -m engine.sessions.host takes one argument, a Job as JSON "
                            "(engine/sessions/job.py); from a shell, use `defdistill-engine run|resume|attack`")
        return host(Job.from_json(args[0]))
    except UserError as exc:
        print(f"defdistill-engine: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
