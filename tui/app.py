"""The dashboard App: bindings, screens, and the wiring between a Session and the widgets.

Engine events arrive on the engine's thread; the subscriber only queues them and posts one
replaceable message, and every widget change happens on the UI thread in its handler.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.widgets import Log

from engine.errors import UserError
from engine.paper import PAPER_TEMPERATURES
from engine.runs.events import Event
from engine.runs.session import Session
from engine.runs.telemetry import Sample, Telemetry
from tui.messages import EventsAvailable, SweepProgress
from tui.screens.attack import AttackModal
from tui.screens.confirm import ConfirmModal
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.screens.quit import QuitModal
from tui.screens.results import ResultsScreen
from tui.screens.temperature import TemperatureModal
from tui.state import DashboardState
from tui.widgets.attack_counter import AttackCounterPanel
from tui.widgets.confidence import ConfidencePanel
from tui.widgets.loss_plot import LossPlot
from tui.widgets.status import StatusBar
from tui.widgets.system import SystemPanel

REDRAW_SECONDS = 0.25  # status, counters, confidence: at most 4 redraws a second
PLOT_SECONDS = 1.0  # the plot is rebuilt whole on each draw (textual-plotext): once a second


class DefdistillApp(App[None]):
    CSS_PATH = "styles.tcss"
    TITLE = "defdistill"
    ENABLE_COMMAND_PALETTE = False  # every action has its key; the footer needs the room at 80 columns
    BINDINGS = [
        Binding("p", "toggle_pause", "pause", tooltip="pause / resume training at the next batch"),
        Binding("t", "temperature", "temp", tooltip="change the training temperature"),
        Binding("j", "attack", "jsma", tooltip="launch a JSMA sweep"),
        Binding("n", "probe(1)", "next", tooltip="next probe input"),
        Binding("N", "probe(-1)", "prev", key_display="N", tooltip="previous probe input"),
        Binding("d", "toggle_deployed", "T=1", tooltip="confidence at deployed T=1 / training T"),
        Binding("r", "results", "results", tooltip="results screen"),
        Binding("s", "screenshot", "svg", tooltip="save a screenshot (SVG) into the run directory"),
        Binding("w", "sweep", "sweep", tooltip="temperature sweep of this preset (paper grid, quick profile) "
                "with figures and report.md; progress in the status line"),
        Binding("question_mark", "help", "help", key_display="?"),
        Binding("q", "quit_app", "quit", tooltip="quit (asks, then stops the run with a checkpoint)"),
    ]

    def __init__(self, session: Session, *, telemetry: Callable[[], Sample] | None = None,
                 start_session: bool = True) -> None:
        super().__init__()
        self.session = session
        self.state = DashboardState()
        self.probe = 0
        self.deployed = False
        self._inbox: deque[Event] = deque()
        self._inbox_lock = threading.Lock()
        self._dirty = True
        self._plot_drawn = 0.0
        self.sweep_status = ""
        self.sweep_temperatures = [float(t) for t in PAPER_TEMPERATURES]
        self.sweep_overrides: list[str] = []
        self._telemetry = telemetry
        self._start_session = start_session
        self.watching = bool(getattr(session, "read_only", False))
        if hasattr(session, "nice"):
            session.nice = 10

    # -- session wiring ---------------------------------------------------------------------------
    def _on_engine_event(self, event: Event) -> None:
        # Engine thread: queue, then one message; post_message is thread-safe and never blocks.
        with self._inbox_lock:
            self._inbox.append(event)
        self.post_message(EventsAvailable())

    async def on_mount(self) -> None:
        await self.push_screen(MainScreen())
        if self._telemetry is None:
            engine_pid = getattr(self.session, "engine_pid", None)
            self._telemetry = Telemetry(pid=engine_pid() if engine_pid else None).sample
        for e in self.session.history():
            self.state.apply(e)
        self.session.subscribe(self._on_engine_event)
        if self._start_session:
            self.session.start()
        self.set_interval(REDRAW_SECONDS, self._redraw)
        self.set_interval(1.0, self._sample_system)
        self._sample_system()
        self._redraw(force=True)

    def on_events_available(self, message: EventsAvailable) -> None:
        with self._inbox_lock:
            events = list(self._inbox)
            self._inbox.clear()
        log = self._log()
        for e in events:
            before = len(self.state.log)
            self.state.apply(e)
            if log is not None:
                for line in self.state.log[before:] if len(self.state.log) > before else []:
                    log.write_line(line)
        self._dirty = True

    def _log(self) -> Log | None:
        try:
            return self.screen.query_one("#events", Log)
        except Exception:
            return None

    # -- drawing ----------------------------------------------------------------------------------
    def _main(self) -> MainScreen | None:
        """The main screen while its widgets exist (not before it is composed, nor while the
        app shuts down: a timer may fire then)."""
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen) and screen.is_attached and screen.query(StatusBar):
                return screen
        return None

    def _redraw(self, force: bool = False) -> None:
        try:
            self._draw_panels(force)
        except NoMatches:  # the screen is being torn down (quit) while a timer fires: nothing to draw
            pass

    def _draw_panels(self, force: bool) -> None:
        main = self._main()
        if main is None or not (self._dirty or force):
            return
        self._dirty = False
        main.query_one(StatusBar).update_from(self.state, self.watching)
        now = time.monotonic()
        if force or now - self._plot_drawn >= PLOT_SECONDS:
            self._plot_drawn = now
            main.query_one(LossPlot).update_from(self.state)
        else:
            self._dirty = True  # the plot still owes a draw
        main.query_one(AttackCounterPanel).update_from(self.state)
        self._draw_confidence()
        log = main.query_one("#events", Log)
        if log.line_count == 0 and self.state.log:
            log.write_lines(self.state.log)

    def _draw_confidence(self) -> None:
        main = self._main()
        if main is not None:
            main.query_one(ConfidencePanel).update_from(self.state, self.probe, self.deployed)

    def _sample_system(self) -> None:
        main = self._main()
        if main is not None and self._telemetry is not None:
            main.query_one(SystemPanel).show(self._telemetry())
        sweep_dir = getattr(self.session, "sweep_dir", None)
        if sweep_dir is not None:  # attached to a sweep: its progress, once a second
            from engine.sweeps.progress import sweep_progress

            line, _run = sweep_progress(sweep_dir)
            if line != self.state.sweep:
                self.state.sweep = line
                self._dirty = True

    # -- actions ----------------------------------------------------------------------------------
    def _command(self, fn: Callable[[], object]) -> bool:
        try:
            fn()
            return True
        except UserError as exc:
            self.notify(str(exc), severity="warning", timeout=6)
            return False

    def action_toggle_pause(self) -> None:
        if self.state.status in ("finished", "failed", "stopped"):
            self.notify(f"the run has {self.state.status}: nothing to pause")
            return
        paused = self.session.state == "paused"
        if self._command(self.session.resume if paused else self.session.pause):
            self.notify("resumed" if paused else "pausing at the next batch")

    def action_temperature(self) -> None:
        def done(value: float | None) -> None:
            if value is not None and self._command(lambda: self.session.set_temperature(value)):
                self.notify(f"temperature {value:g} from the next batch")

        self.push_screen(TemperatureModal(self.state.distill_temperature), done)

    def action_attack(self) -> None:
        phases = list(self.session.preset.distillation.phases)
        default = self.session.preset.attack.samples

        def done(req: dict | None) -> None:
            if req is not None and self._command(lambda: self.session.attack(**req)):
                self.notify("JSMA sweep queued" + (" (after training)" if self.state.status == "running" else ""))

        self.push_screen(AttackModal(phases, default), done)

    def action_probe(self, step: int) -> None:
        if self.state.probe_images:
            self.probe = (self.probe + step) % len(self.state.probe_images)
        self._draw_confidence()

    def action_toggle_deployed(self) -> None:
        self.deployed = not self.deployed
        self._draw_confidence()

    def action_results(self) -> None:
        self.push_screen(ResultsScreen(self.state))

    def action_screenshot(self) -> None:
        folder = Path(self.session.run_dir)
        name = f"screenshot-{time.strftime('%Y%m%d-%H%M%S')}.svg"
        try:
            path = self.save_screenshot(filename=name, path=str(folder))
        except OSError as exc:
            self.notify(f"cannot save a screenshot in {folder}: {exc.strerror}", severity="error")
            return
        self.notify(f"screenshot: {path}")

    def action_help(self) -> None:
        self.push_screen(HelpScreen([b for b in self.BINDINGS if isinstance(b, Binding)]))

    def action_quit_app(self) -> None:
        active = not self.watching and self.session.state in ("running", "paused", "starting")
        detachable = hasattr(self.session, "close")  # an engine process of its own can be left running
        if not active:
            self._leave()
            return

        def answer(choice: str | None) -> None:
            if choice == "stop":
                self.notify("stopping: checkpoint at the next batch…")
                self._stop_and_exit()
            elif choice == "detach":
                self._leave()

        self.push_screen(QuitModal(detachable), answer)

    def _leave(self) -> None:
        """Quit without touching the run: stop following its log, if this session follows one."""
        close = getattr(self.session, "close", None)
        if close is not None:
            close()
        elif self.watching:
            self.session.stop()
        self.exit()

    def action_sweep(self) -> None:
        if self.watching:
            self.notify("read-only: run `defdistill-engine sweep` from a shell", severity="warning")
            return
        if self.sweep_status:
            self.notify(f"a sweep is already running: {self.sweep_status}")
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.sweep_status = "starting"
                self._run_sweep()

        self.push_screen(ConfirmModal("Run the paper's temperature sweep (T = 1..100, quick profile) of this preset "
                                      "after the current run? Figures and report.md go to "
                                      f"{self.session.run_dir}-sweep"), answer)

    @work(thread=True, exclusive=True, group="sweep", exit_on_error=False)
    def _run_sweep(self) -> None:
        from engine.sweeps.report import write_report
        from engine.sweeps.sweep import run_sweep, sweep_runs

        self.session.wait()  # the run on screen first: two trainings would halve each other's speed
        sweep_dir = Path(f"{self.session.run_dir}-sweep")
        sweep_dir.mkdir(parents=True, exist_ok=True)
        preset_path = sweep_dir / "base-preset.toml"
        preset_path.write_text(self.session.preset.to_toml())
        temps = self.sweep_temperatures
        total = len(sweep_runs([], temps))
        done = [0]

        def follow(session) -> int:
            name = Path(session.run_dir).name
            self.post_message(SweepProgress(f"sweep {name} ({done[0]}/{total} done)", done[0], total))
            session.nice = 10
            session.start()
            session.wait()
            done[0] += 1
            return 0 if session.state == "finished" else 1

        try:
            run_sweep(str(preset_path), self.sweep_overrides, temps, sweep_dir, quick=True, follow=follow)
            report = write_report(sweep_dir)
            self.post_message(SweepProgress(f"sweep done: {report}", total, total, finished=True))
        except UserError as exc:
            self.post_message(SweepProgress(f"sweep failed: {exc}", done[0], total, finished=True))
        except Exception as exc:  # say so on screen; the worker must not die silently
            self.post_message(SweepProgress(f"sweep failed: {type(exc).__name__}: {exc}", done[0], total,
                                            finished=True))

    def on_sweep_progress(self, message: SweepProgress) -> None:
        self.sweep_status = "" if message.finished else message.text
        self.state.sweep = message.text
        self.state.log.append(message.text)
        log = self._log()
        if log is not None:
            log.write_line(message.text)
        self._dirty = True
        if message.finished:
            self.notify(message.text, timeout=10)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _stop_and_exit(self) -> None:
        self.session.stop()
        self.session.wait(120)
        self.call_from_thread(self.exit)
