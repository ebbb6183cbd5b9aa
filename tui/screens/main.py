"""The live dashboard: status, loss curves, confidence, system, attack counter, event log."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Log

from tui.widgets.attack_counter import AttackCounterPanel
from tui.widgets.confidence import ConfidencePanel
from tui.widgets.loss_plot import LossPlot
from tui.widgets.status import StatusBar
from tui.widgets.system import SystemPanel


class MainScreen(Screen[None]):
    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Horizontal(id="top"):
            yield LossPlot(id="loss")
            with Vertical(id="side"):
                yield ConfidencePanel(id="confidence")
                yield SystemPanel(id="system")
        with Horizontal(id="bottom"):
            yield AttackCounterPanel(id="attacks")
            yield Log(id="events", max_lines=500, auto_scroll=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#loss").border_title = "loss / accuracy"
        self.query_one("#confidence").border_title = "softmax confidence"
        self.query_one("#system").border_title = "GPU"
        self.query_one("#attacks").border_title = "attacks"
        self.query_one("#events").border_title = "events"
