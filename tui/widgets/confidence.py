"""Softmax confidence of a probe input at a temperature: the distilled model's saturation, visible."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from engine.client import DEPLOYED, temperature_label, trained_temperature
from tui.state import DashboardState, softmax
from tui.widgets.image import half_block

COMPACT_BELOW = 32  # terminal rows: below this, a smaller image and two columns of bars


def _bar(p: float, width: int) -> str:
    n = p * width
    return ("█" * int(n) + (" ▏▎▍▌▋▊▉"[int((n - int(n)) * 8)] if n < width else "")).ljust(width)


def _bars(probs: list[float], compact: bool) -> Table:
    top = max(range(len(probs)), key=probs.__getitem__)
    width, fmt = (6, "{:.2f}") if compact else (20, "{:.4f}")
    table = Table.grid(padding=(0, 1))
    cells = []
    for cls, p in enumerate(probs):
        style = "bold green" if cls == top else "cyan"
        cells.append([str(cls), Text(_bar(p, width), style=style), fmt.format(p)])
    if compact:
        half = (len(cells) + 1) // 2
        for i in range(half):
            table.add_row(*cells[i], *(cells[i + half] if i + half < len(cells) else ["", "", ""]))
    else:
        for row in cells:
            table.add_row(*row)
    return table


class ConfidencePanel(Static):
    def update_from(self, state: DashboardState, probe: int, deployed: bool) -> None:
        if not state.probe_images:
            self.update(Text("waiting for the engine's probe inputs…", style="dim"))
            return
        probe %= len(state.probe_images)
        compact = self.app.size.height < COMPACT_BELOW
        current = state.current_probe_logits()
        t_train = trained_temperature(current[0] if current else "baseline", state.distill_temperature)
        temperature = DEPLOYED if deployed else t_train
        head = Text.assemble(("probe ", "dim"), f"{probe + 1}/{len(state.probe_images)}",
                             (" label ", "dim"), str(state.probe_labels[probe]))
        if current is None:
            body: Table | Text = Text("no trained epoch yet", style="dim")
        else:
            phase, logits = current
            head.append(f" {phase} @ T={temperature_label(temperature)}" + (" deployed" if deployed else ""),
                        style="bold")
            body = _bars(softmax(logits[probe], temperature), compact)
        grid = Table.grid(padding=(0, 1))
        grid.add_row(half_block(state.probe_images[probe], state.probe_side, 4 if compact else 2), body)
        shape = (compact, current is None)
        # relayout only when the panel's height can change; a new probe or T redraws in place
        self.update(Group(head, grid), layout=shape != getattr(self, "_shape", None))
        self._shape = shape
