"""Change the training temperature: rejects <= 0, nan, inf and non-numbers in place."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from engine.client import UserError, check_temperature, temperature_label


class TemperatureModal(ModalScreen[float | None]):
    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, current: float) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="modal-box"):
            yield Label(f"Temperature (now {temperature_label(self.current)}); applies at the next batch:")
            yield Input(placeholder="e.g. 20", id="temperature-input")
            yield Label("", id="temperature-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            value = check_temperature(event.value.strip())
        except UserError as exc:
            self.query_one("#temperature-error", Label).update(f"[red]{exc}[/]")
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
