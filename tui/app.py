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

from engine.client import (
    PAPER_TEMPERATURES,
    AttackRequest,
    Event,
    Sample,
    Session,
    SweepWatch,
    Telemetry,
    UserError,
    result_files,
    temperature_label,
)
from tui.messages import EventsAvailable, SystemSampled
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
        Binding("j", "attack", "attack", tooltip="launch attacks: JSMA on chosen outputs, C&W on the logits"),
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
        self.sweep_temperatures = [float(t) for t in PAPER_TEMPERATURES]
        self.sweep_overrides: list[str] = []
        # the sweep on screen: one this dashboard launched (its own engine process), or the one attached to
        self.sweep_dir: Path | None = session.sweep_dir
        self._sweep: SweepWatch | None = SweepWatch(session.sweep_dir) if session.sweep_dir is not None else None
        self._telemetry = telemetry
        self._telemetry_off_thread = False  # a test's fixed sample is shown at once, on the UI thread
        self._start_session = start_session
        self._problems_said: set[str] = set()
        self._bindings_for: tuple = ()
        self.watching = session.read_only
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
            # NVML is read on a worker thread; the engine's device and GPU UUID come from its events
            source = Telemetry(pid=self.session.engine_pid())
            self._telemetry = lambda: source.sample(self.state.device, self.state.gpu_uuid)
            self._telemetry_off_thread = True
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
        seen = self.state.log_total
        for e in events:
            self.state.apply(e)
        log = self._log()
        if log is not None:
            log.write_lines(self.state.new_lines(seen))
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
        self._refresh_bindings_if_changed()  # the footer follows the state it was drawn from
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
        if self._telemetry is not None:
            if self._telemetry_off_thread:
                self._read_system()
            else:
                self._show_system(self._telemetry())
        self._say_problems()
        if self.sweep_dir is not None:  # a sweep on screen: its progress, once a second
            line = self._sweep_line()
            if line != self.state.sweep:
                self.state.sweep = line
                self._note(line)
                if self._sweep_ended():
                    self.notify(line, timeout=10)
        self._refresh_bindings_if_changed()

    @work(thread=True, exclusive=True, exit_on_error=False, group="telemetry")
    def _read_system(self) -> None:
        assert self._telemetry is not None
        self.post_message(SystemSampled(self._telemetry()))

    def on_system_sampled(self, message: SystemSampled) -> None:
        self._show_system(message.sample)

    def _show_system(self, sample: Sample) -> None:
        main = self._main()
        if main is not None:
            main.query_one(SystemPanel).show(sample)

    def _sweep_line(self) -> str:
        assert self._sweep is not None
        return self._sweep.line()

    def _say_problems(self) -> None:
        """What the session could not read, once each, in the log and as a notification."""
        for line in self.session.problems():
            key = line.split(" (first")[0].rsplit(":", 1)[0]  # the file, not the count that grows
            if key not in self._problems_said:
                self._problems_said.add(key)
                self._note(line)
                self.notify(line, severity="warning", timeout=10)

    def _note(self, text: str) -> None:
        self.state.note(text)
        log = self._log()
        if log is not None:
            log.write_line(self.state.log[-1])
        self._dirty = True

    def _refresh_bindings_if_changed(self) -> None:
        key = (self.state.status, bool(self.state.probe_images), bool(self.state.attack_results),
               self._sweep_running())
        if key != self._bindings_for:
            self._bindings_for = key
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys that would do nothing now: hidden when they never can here (read-only), greyed while
        the state forbids them."""
        ended = self.state.status in ("finished", "failed", "stopped")
        if action in ("toggle_pause", "temperature", "attack", "sweep") and self.watching:
            return False
        if action in ("toggle_pause", "temperature"):
            return None if ended else True
        if action == "sweep":
            return None if self._sweep_running() else True
        if action in ("probe", "toggle_deployed"):
            return True if self.state.probe_images else None
        return True

    def _sweep_running(self) -> bool:
        return self.sweep_dir is not None and not self._sweep_ended()

    def _sweep_ended(self) -> bool:
        return SweepWatch.ended(self.state.sweep)

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
                self.notify(f"temperature {temperature_label(value)} from the next batch")

        self.push_screen(TemperatureModal(self.state.distill_temperature), done)

    def action_attack(self) -> None:
        phases = list(self.session.preset.distillation.phases)
        default = self.session.preset.attack.samples

        def done(req: AttackRequest | None) -> None:
            if req is not None and self._command(lambda: self.session.attack(req)):
                self.notify("attacks queued" + (" (after training)" if self.state.status == "running" else ""))

        self.push_screen(AttackModal(phases, default, list(self.session.preset.attack.methods)), done)

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
        if self.is_web:  # in a browser tab: the file comes down to the browser too
            self.deliver_text(path, open_method="download", mime_type="image/svg+xml")

    @work(thread=True, exclusive=True, exit_on_error=False, group="downloads")
    def action_download_results(self) -> None:
        """report.md and the PNG figures of this run (or of the sweep on screen), as browser downloads;
        an engine process writes them (the dashboard never imports matplotlib)."""
        try:
            files = result_files(Path(self.session.run_dir), self.sweep_dir)
        except UserError as exc:
            self.call_from_thread(self.notify, str(exc), severity="warning", timeout=8)
            return
        for f in files:
            if f.suffix == ".md":
                self.call_from_thread(self.deliver_text, f, open_method="download", mime_type="text/markdown")
            else:
                self.call_from_thread(self.deliver_binary, f, open_method="download", mime_type="image/png")
        self.call_from_thread(self.notify, "downloads: " + ", ".join(f.name for f in files))

    def action_help(self) -> None:
        self.push_screen(HelpScreen([b for b in self.BINDINGS if isinstance(b, Binding)]))

    def action_quit_app(self) -> None:
        active = not self.watching and self.session.state in ("running", "paused", "starting")
        detachable = self.session.detachable  # an engine process of its own can be left running
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
        """Quit without touching the run (a detached engine and a launched sweep go on)."""
        self.session.close()
        self.exit()

    def action_sweep(self) -> None:
        if self.watching:
            self.notify("read-only: run `defdistill-engine sweep` from a shell", severity="warning")
            return
        if self._sweep_running():
            self.notify(f"a sweep is already running: {self.state.sweep}")
            return
        sweep_dir = Path(f"{self.session.run_dir}-sweep")

        def answer(yes: bool | None) -> None:
            if yes:
                self._launch_sweep(sweep_dir)

        self.push_screen(ConfirmModal("Run the paper's temperature sweep (T = 1..100, quick profile) of this preset "
                                      "after the current run, as an engine of its own (it outlives this "
                                      f"dashboard)? Figures and report.md go to {sweep_dir}"), answer)

    def _launch_sweep(self, sweep_dir: Path) -> None:
        try:
            self._sweep = SweepWatch.start(
                Path(self.session.run_dir) / "preset.toml", sweep_dir, after=Path(self.session.run_dir),
                temperatures=self.sweep_temperatures, overrides=self.sweep_overrides,
                data_root=self.session.preset.data.root)
        except (UserError, OSError) as exc:
            self.notify(f"cannot start the sweep: {exc}", severity="error")
            return
        self.sweep_dir = sweep_dir
        self._note(f"sweep started (pid {self._sweep.pid}): defdistill-tui --attach {sweep_dir}")
        self._sample_system()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _stop_and_exit(self) -> None:
        self.session.stop()
        self.session.wait(120)
        self.call_from_thread(self.exit)
