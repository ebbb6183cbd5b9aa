"""GPU panel: NVML for the engine's GPU; without one, one line says so and CPU/RAM are shown."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from engine.client import Sample


class SystemPanel(Static):
    def show(self, sample: Sample) -> None:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim")
        grid.add_column()
        for k, v in sample.fields.items():
            grid.add_row(k, v)
        parts = [Text(sample.title, style="bold")]
        if sample.note:
            parts.append(Text(sample.note, style="yellow"))
        from rich.console import Group

        self.update(Group(*parts, grid), layout=False)
