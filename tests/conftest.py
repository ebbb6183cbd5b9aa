"""Shared fixtures and helpers. What costs CPU is made once per session and read by every test that
only reads it: a small trained digits run (`trained_run`), a small sweep (`small_sweep`), and the
acceptance run of the default preset, which trains in the background from the start of the session
(`acceptance_run`). A test that needs training of its own trains the least that still shows its
behaviour (`SMALL`)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

# The suite runs more torch threads than the machine has cores (two xdist workers, the engines they start,
# the acceptance run). OpenMP's default spin-waiting then burns the cores other processes need: measured
# 2x slower under one competing engine. Idle threads sleep instead (set before any test imports torch;
# the processes tests start inherit it).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

# Small but real (~40 s on this repository's 2-core CPU): 8 epochs on 800 digits images; T = 20 so the
# student converges in that time (baseline ~0.98, student ~0.8 held-out accuracy). The shared trained run.
QUICK = [
    "training.epochs=8", "data.train_limit=800", "data.test_limit=200", "training.optimizer='adam'",
    "training.lr=0.002", "training.lr_decay=1.0", "distillation.temperature=20", "attack.enabled=false",
    "device='cpu'",  # pinned: tests compare with CPU tensors they build (tests/test_gpu.py covers CUDA)
]
# For runs whose behaviour does not depend on what the networks learn (pausing, stopping, locks, resume,
# steering): QUICK on 256 images, two batches an epoch, each batch reported (tests count batch events).
SMALL = [*(s for s in QUICK if not s.startswith(("data.train_limit", "data.test_limit"))),
         "data.train_limit=256", "data.test_limit=64", "training.batch_size=128", "training.report_seconds=0"]
# A SMALL run that a test stops before it ends: it is still training whenever the test looks.
LONG = [*SMALL, "training.epochs=100"]


def with_sets(*overrides: str) -> list[str]:
    """`--set` arguments for the command line."""
    return [a for o in overrides for a in ("--set", o)]


def wait_until(predicate: Callable[[], object], timeout: float = 120.0, what: str = "condition") -> None:
    """Poll `predicate` until it is true; fail naming `what` after `timeout` seconds. Tests wait for
    a condition, never for a fixed time: a slow CI machine then only takes longer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout:.0f} s")


async def pilot_wait_until(pilot, predicate: Callable[[], object], timeout: float = 120.0,
                           what: str = "condition") -> None:
    """`wait_until` for Textual pilot tests: lets the app run between polls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"{what} not reached within {timeout:.0f} s")


async def press_into_modal(pilot, key: str, modal: type, *typed: str, focus: str | None = None) -> None:
    """Press `key`, wait until `modal` is the top screen (and `focus`, a selector, has the focus), then
    type. Keys sent before the modal mounts go to the screen below: under load on a 2-core machine the
    modal can take longer than one idle tick to appear."""
    app = pilot.app
    await pilot.press(key)
    await pilot_wait_until(pilot, lambda: isinstance(app.screen, modal) and (
        focus is None or app.focused is not None and app.focused in app.screen.query(focus)), what=f"{modal.__name__}")
    if typed:
        await pilot.press(*typed)


def dashboard_in_a_terminal(args: list[str]) -> tuple[int, int]:
    """Start `args` (the dashboard) in a pseudo-terminal of its own, 120 x 40, from the repository root, as a
    login shell would: SIGHUP at its default, which ends the process. A test runner started under `nohup`
    passes SIGHUP ignored on to every process it starts, and the dashboard would then outlive its hang-up.
    Returns (pid, the terminal's fd)."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)  # kept across exec only when ignored: reset it
        os.chdir(ROOT)
        os.environ.update({"TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"})
        os.execv(sys.executable, args)
    return pid, fd


def cli(*args: str) -> subprocess.CompletedProcess:
    """`defdistill-engine ARGS` run in this process (no new interpreter importing torch), with its exit
    code, stdout and stderr. A test that needs the engine in a process of its own (signals, kills, Ray)
    uses `cli_process`. Signal handlers are restored after: a sweep ignores SIGHUP for its whole
    duration, and processes this one starts later must not inherit that."""
    out, err = io.StringIO(), io.StringIO()
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
    from engine.cli import main

    threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    cwd = os.getcwd()
    try:
        os.chdir(ROOT)  # as the subprocess ran: relative defaults (runs/) resolve where they did
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's usage errors, --version, --help
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        os.chdir(cwd)
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        if threads is not None:  # a preset's `threads` is process-wide: the next test gets the machine's
            sys.modules["torch"].set_num_threads(threads)
    return subprocess.CompletedProcess(["defdistill-engine", *args], code, out.getvalue(), err.getvalue())


def cli_process(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """`defdistill-engine ARGS` as a process of its own."""
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def shared_root(tmp_path_factory) -> Path:
    """The folder every pytest-xdist worker of this session sees (the session's own without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """`build(folder)` run once per test session, whichever worker asks first: the others wait on a file
    lock and read what it made (pytest-xdist's recipe for session-scoped data)."""
    from filelock import FileLock

    root = shared_root(tmp_path_factory)
    target, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(target, ignore_errors=True)
            build(target)
            done.touch()
    return target


class TrainedRun:
    """A finished run directory and what the tests read of it: its data, its device, and the event stream
    the live session saw (kept beside the run, so a worker that did not train it reads the same)."""

    def __init__(self, run_dir: Path) -> None:
        from engine.data import load_dataset
        from engine.presets import preset_from_toml
        from engine.record.rundir import RunDir

        self.run_dir = run_dir
        self.rundir = RunDir.open(run_dir)
        self.preset = preset_from_toml(self.rundir.read_preset_toml())
        self.data = load_dataset(self.preset.data)
        self.device = sys.modules["torch"].device("cpu")

    def history(self) -> list:
        from engine.record.rundir import iter_events

        return list(iter_events(self.run_dir.parent / "session-history.jsonl"))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> TrainedRun:
    """One finished quick digits run (baseline, teacher and student at T=20), no attacks yet."""
    def train(folder: Path) -> None:
        from engine.presets import load_preset
        from engine.sessions.thread_session import ThreadSession

        session = ThreadSession.create(load_preset("digits", QUICK), folder / "trained")
        session.start()
        assert session.wait(600)
        assert session.state == "finished", session.error
        (folder / "session-history.jsonl").write_text("".join(e.to_json() + "\n" for e in session.history()))

    return TrainedRun(built_once(tmp_path_factory, "trained", train) / "trained")


# The small sweep shared by the sweep tests: two temperatures and two seeds (spread over seeds), every attack
# and check at the least that still makes each number (C&W and the checks included), two threads per run
# wherever it runs (a Ray worker would take one: the numbers depend on it). Networks that learn (held-out
# accuracy ~0.9 baseline, ~0.8 students at T = 2 and 5), so the attacks and verdicts have something to measure.
SWEEP_PRESET = ["digits", "--quiet", *with_sets(
    "training.epochs=4", "data.train_limit=400", "data.test_limit=100", "training.optimizer='adam'",
    "training.lr=0.001", "training.batch_size=16", "training.lr_decay=1.0", "threads=2", "device='cpu'",
    "attack.samples=2", "attack.outputs=['softmax', 'logits', 'softmax_T']", "attack.methods=['jsma', 'cw_l2']",
    "attack.cw_l2.max_iterations=100", "attack.cw_l2.binary_search_steps=3", "attack.cw_l2.learning_rate=0.05",
    "attack.cw_l2.initial_const=0.1", "attack.checks=['transfer', 'blackbox', 'budget']", "attack.check_samples=2",
    "attack.simba_queries=200", "attack.transfer_kappas=[0.0, 20.0]",
    # no escalation rounds (2 by default, each up to 6 binary steps of 1,000 iterations on every miss of these
    # 4-epoch nets): the sweep tests check its mechanics, not the verdict, which then says "inconclusive"
    # where CW-L2 missed, never "masked" (tests/test_verdict.py and bench/verdict_controls.py judge it)
    "attack.cw_l2.escalations=0")]
SWEEP_ARGS = [*SWEEP_PRESET, "--temperatures", "2,5", "--seeds", "0,1"]


@pytest.fixture(scope="session")
def small_sweep(tmp_path_factory) -> Path:
    """A finished sweep directory (baseline and T = 2, 5, seeds 0 and 1). Tests copy it before they
    write into it."""
    def sweep(folder: Path) -> None:
        proc = cli("sweep", *SWEEP_ARGS, "--sweep-dir", str(folder))
        assert proc.returncode == 0, proc.stderr[-2000:]

    return built_once(tmp_path_factory, "small-sweep", sweep)


JSMA_ONLY = with_sets("attack.methods=['jsma']", "attack.checks=[]")  # appended: the last --set wins
JSMA_OUTPUTS = ("softmax", "logits", "softmax_T")


def sweep_numbers(result: dict, temperature: str, seed: int | None = None) -> dict:
    """The numbers of a sweep.json that a deterministic CPU run must repeat (not timings, not placement):
    accuracy, logit size and JSMA's success and distortion of the baseline and of one temperature, with
    their spread over seeds and every seed's own. A sweep re-run with JSMA only repeats them exactly: the
    networks train before any attack, and JSMA runs before C&W and the checks. `seed`: one seed's entries
    of a sweep over several, to compare with a sweep of that seed alone."""
    def jsma(d: dict) -> dict:
        return {k: v for k, v in d.items() if k in JSMA_OUTPUTS}

    def entry(e: dict) -> dict:
        spread = e.get("spread", {})
        return {"accuracy": e["accuracy"], "mean_abs_logit": e["mean_abs_logit"],
                "success_rate": jsma(e["success_rate"]), "mean_features_changed": jsma(e["mean_features_changed"]),
                "spread": {k: jsma(v) if isinstance(v, dict) else v for k, v in spread.items() if k != "cw_distance"},
                "per_seed": [jsma(s["success_rate"]) for s in e.get("per_seed", [])]}
    base, at_t = result["baseline"], result["by_temperature"][temperature]
    if seed is not None:
        base, at_t = base["per_seed"][seed], at_t["per_seed"][seed]
    return {"baseline": entry(base), temperature: entry(at_t)}


def copy_run(src: Path, dst: Path) -> Path:
    """A copy of a run or sweep directory without the lock file of the engine that wrote it."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("engine.lock", "engine.sock", "engine.pid"))
    return dst


class AcceptanceRun:
    """The embedded default preset exactly as a user runs it (`defdistill-engine run digits`), started in
    the background at the beginning of the session at a lower priority, so the rest of the suite runs beside
    its minutes of training and attacks; the acceptance test, collected last, waits for it. One per session
    whatever the number of xdist workers: the exit code lands in a file any of them can read."""

    def __init__(self, folder: Path) -> None:
        self.run_dir, self.log, self.rc = folder / "run", folder / "engine.log", folder / "exit-code"

    def start(self) -> subprocess.Popen:
        self.run_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            return subprocess.Popen(
                ["sh", "-c", '"$@"; echo $? > "$RC"', "sh", sys.executable, "-m", "engine.cli", "run", "digits",
                 "--run-dir", str(self.run_dir), "--quiet"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "RC": str(self.rc)}, preexec_fn=lambda: os.nice(5), start_new_session=True)

    def wait(self, timeout: float = 1800) -> subprocess.CompletedProcess:
        wait_until(self.rc.exists, timeout, "the acceptance run's end")
        code = int(self.rc.read_text().strip() or "1")
        log = self.log.read_text(errors="replace")
        return subprocess.CompletedProcess("defdistill-engine run digits", code, "", log)


ACCEPTANCE_TEST = "test_default_digits_run_shows_distillation_and_masked_gradients"


# Tests by kind: `-m unit` runs the fast tests of pure functions and small models (seconds); `-m functional`
# those that run the engine, a sweep or the dashboard (a process, a session, a trained run); `slow` is a
# kind of its own on top (what CI always runs and a developer may skip).
FUNCTIONAL_MODULES = {
    "test_attach", "test_bench_gpu", "test_cli_scripting", "test_cw_budget", "test_damaged_runs", "test_data",
    "test_docs_reports", "test_engine", "test_gpu", "test_packaging", "test_paper_effect", "test_ray_sweep",
    "test_run_lock", "test_serve", "test_sweep", "test_sweep_detached", "test_sweep_grow", "test_sweep_parallel",
    "test_temperature_resume", "test_tensorboard", "test_tui_pilot", "test_tui_snapshots",
}
ENGINE_FIXTURES = {"trained_run", "small_sweep", "acceptance_run", "shared_data"}


def _kind(item: pytest.Item) -> str:
    if item.get_closest_marker("functional") or item.get_closest_marker("slow"):
        return "functional"
    module = item.module.__name__.rsplit(".", 1)[-1] if getattr(item, "module", None) else ""
    uses = set(getattr(item, "fixturenames", ()))
    return "functional" if module in FUNCTIONAL_MODULES or uses & ENGINE_FIXTURES else "unit"


def pytest_collection_modifyitems(session, config, items) -> None:
    for item in items:
        if _kind(item) == "unit":
            item.add_marker(pytest.mark.unit)
        elif not item.get_closest_marker("functional"):
            item.add_marker(pytest.mark.functional)
    # The acceptance run's test last: it waits for a run that started with the session.
    items.sort(key=lambda item: item.name == ACCEPTANCE_TEST)


@pytest.fixture(scope="session", autouse=True)
def _acceptance_run_started(request, tmp_path_factory):
    """Starts the acceptance run with the session when its test was collected (the first worker to get
    here starts it; the run is stopped if the session ends first)."""
    from filelock import FileLock

    run = AcceptanceRun(shared_root(tmp_path_factory) / "acceptance")
    proc = None
    if any(item.name == ACCEPTANCE_TEST for item in request.session.items):
        with FileLock(str(shared_root(tmp_path_factory) / "acceptance.lock")):
            if not run.run_dir.parent.exists():
                proc = run.start()
    yield run
    if proc is not None and proc.poll() is None:
        if request.session.shouldfail or request.session.shouldstop:  # -x and the like: nobody will read it
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()  # otherwise its test may be another worker's: this one leaves only once the run has ended


@pytest.fixture(scope="session")
def acceptance_run(_acceptance_run_started) -> AcceptanceRun:
    return _acceptance_run_started


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "FashionMNIST" / "raw").is_dir():
        pytest.skip("../shared/data is absent on this machine")
    return SHARED_DATA
