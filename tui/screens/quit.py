"""Quitting while a run is active: stop it (checkpoint, resumable), leave it running, or stay."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label


class QuitModal(ModalScreen[str | None]):
    BINDINGS = [Binding("y", "answer('stop')", "stop and quit"), Binding("d", "answer('detach')", "detach"),
                Binding("n,escape", "answer(None)", "stay")]

    def __init__(self, can_detach: bool) -> None:
        super().__init__()
        self.can_detach = can_detach

    def compose(self) -> ComposeResult:
        with Vertical(id="modal-box"):
            yield Label("A run is active. Stop it with a checkpoint (resumable) and quit?")
            keys = "[b]y[/b] stop and quit   "
            if self.can_detach:
                keys += "[b]d[/b] quit, leave it running (defdistill-tui --attach)   "
            yield Label(keys + "[b]n[/b] stay")

    def action_answer(self, choice: str | None) -> None:
        if choice == "detach" and not self.can_detach:
            return
        self.dismiss(choice)
