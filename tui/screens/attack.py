"""Launch attacks: which models, which attacks (JSMA on which outputs, C&W's), how many held-out samples."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label

from engine.client import ATTACK_METHODS as METHODS
from engine.client import ATTACK_OUTPUTS as OUTPUTS
from engine.client import AttackRequest


class AttackModal(ModalScreen[AttackRequest | None]):
    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, models: list[str], samples: int, methods: list[str] | None = None) -> None:
        super().__init__()
        self.models = models
        self.samples = samples
        self.methods = methods or ["jsma"]

    def compose(self) -> ComposeResult:
        with Vertical(id="modal-box"):
            yield Label("JSMA (targeted, theta=+1, Upsilon=14.5%): each sample x its 9 other classes; "
                        "C&W on the logits (the preset's cases and settings)")
            yield Label("models:")
            with Horizontal(classes="checks"):
                for m in self.models:
                    yield Checkbox(m, value=m in ("baseline", "student"), id=f"model-{m}")
            yield Label("attacks:")
            with Horizontal(classes="checks"):
                for m in METHODS:
                    yield Checkbox(m, value=m in self.methods, id=f"method-{m}")
            yield Label("JSMA's attacked outputs:")
            with Horizontal(classes="checks"):
                for o in OUTPUTS:
                    yield Checkbox(o, value=True, id=f"output-{o}")
            yield Label("held-out samples:")
            yield Input(str(self.samples), id="attack-samples")
            yield Label("", id="attack-error")
            yield Button("launch", id="attack-launch", variant="primary")

    def _submit(self) -> None:
        models = [m for m in self.models if self.query_one(f"#model-{m}", Checkbox).value]
        outputs = [o for o in OUTPUTS if self.query_one(f"#output-{o}", Checkbox).value]
        methods = [m for m in METHODS if self.query_one(f"#method-{m}", Checkbox).value]
        raw = self.query_one("#attack-samples", Input).value.strip()
        error = ""
        if not models or not methods:
            error = "choose at least one model and one attack"
        elif "jsma" in methods and not outputs:
            error = "JSMA needs at least one attacked output"
        elif not raw.isdigit() or int(raw) < 1:
            error = f"samples must be a whole number >= 1, got {raw!r}"
        if error:
            self.query_one("#attack-error", Label).update(f"[red]{error}[/]")
            return
        self.dismiss(AttackRequest(models=tuple(models), outputs=tuple(outputs) or None, samples=int(raw),
                                   methods=tuple(methods)))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self._submit()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def action_cancel(self) -> None:
        self.dismiss(None)
