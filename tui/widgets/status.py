"""Header line: state, preset, dataset, the engine's device, phase, epoch, ETA, temperature, run directory."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from engine.client import temperature_label
from tui.state import DashboardState

STATE_STYLE = {"running": "bold green", "paused": "bold yellow", "finished": "bold cyan",
               "stopped": "bold magenta", "failed": "bold red", "starting": "dim"}


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"


class StatusBar(Static):
    def update_from(self, state: DashboardState, watching: bool = False) -> None:
        t = Text()
        t.append(f" ● {state.status} ", STATE_STYLE.get(state.status, ""))
        t.append(f" {state.preset or '…'}", "bold")
        t.append(f" ({state.dataset})  ", "dim")
        if state.device:  # what the engine got ("auto" says which in the event log too)
            t.append(f"{state.device.split(' (')[0]}  ", "cyan")
        t.append(f"phase {state.phase}  ")
        if state.phase in ("baseline", "teacher", "student"):
            t.append(f"epoch {min(state.epoch + 1, state.epochs)}/{state.epochs}  ")
            t.append(f"ETA {_eta(state.eta_seconds)}  ")
        t.append(f"T={temperature_label(state.temperature)}", "bold magenta")
        t.append(f" (distill T={temperature_label(state.distill_temperature)})  ", "dim")
        if watching:
            t.append("read-only  ", "yellow")
        if state.sweep:
            t.append(state.sweep + "  ", "bold yellow")
        t.append(state.run_dir, "dim")
        self.update(t, layout=False)  # one fixed line: no relayout of the screen
