"""Live JSMA counters per (model, attacked output): succeeded / attempted, rate, progress, speed."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from tui.state import DashboardState

WIDTH = 12


class AttackCounterPanel(Static):
    def update_from(self, state: DashboardState) -> None:
        if not state.attacks:
            self.update(Text("no attacks yet: press j to launch attacks (JSMA, C&W)", style="dim"))
            return
        table = Table(box=None, padding=(0, 1), show_edge=False, expand=True)
        for col, just in (("model-output", "left"), ("succeeded", "right"), ("rate", "right"),
                          ("progress", "left"), ("att/s", "right")):
            table.add_column(col, justify=just, no_wrap=True)
        for key, c in state.attacks.items():
            frac = c.attempted / c.n_attacks if c.n_attacks else 0.0
            bar = "█" * int(frac * WIDTH) + "░" * (WIDTH - int(frac * WIDTH))
            table.add_row(key, f"{c.succeeded}/{c.attempted}", f"{100 * c.rate:.1f}%",
                          Text(bar, style="green" if c.done else "yellow"), f"{c.attacks_per_second:.0f}")
        self.update(table, layout=False)  # its box is sized by the layout, not its content
