"""Help: every key the dashboard answers to, from the app's own bindings."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def __init__(self, bindings: list[Binding]) -> None:
        super().__init__()
        self._bindings = bindings

    def compose(self) -> ComposeResult:
        table = Table(box=None, padding=(0, 2))
        table.add_column("key", style="bold cyan")
        table.add_column("what it does")
        for b in self._bindings:
            table.add_row(b.key_display or b.key, b.tooltip or b.description)
        with Vertical(id="help-box"):
            yield Static("defdistill — keys", id="help-title")
            yield Static(table)
            yield Static("JSMA-F attacks the deployed softmax (T=1, the paper); softmax_T attacks softmax(z/T) "
                         "(Carlini & Wagner): if only the first fails, the robustness is masked gradients.",
                         id="help-note")
            yield Static("escape closes", classes="dim")
