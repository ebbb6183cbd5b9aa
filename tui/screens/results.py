"""Results: success rate per model x attacked output, the source x target matrix, adversarial examples."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from engine.runs.events import AttackFinished
from tui.state import DashboardState
from tui.widgets.image import half_block

OUTPUTS = ("softmax", "logits", "softmax_T")


class ResultsScreen(Screen[None]):
    BINDINGS = [Binding("escape,r", "app.pop_screen", "back"),
                Binding("right,l", "cycle(1)", "next result"), Binding("left,h", "cycle(-1)", "previous result")]

    def __init__(self, state: DashboardState) -> None:
        super().__init__()
        self.state = state
        self.keys = list(state.attack_results)
        self.index = 0

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="results"):
            yield Static(id="results-table")
            with Horizontal(id="results-detail"):
                yield Static(id="results-matrix")
                yield Static(id="results-examples")
        yield Footer()

    def on_mount(self) -> None:
        self._draw()

    def action_cycle(self, step: int) -> None:
        if self.keys:
            self.index = (self.index + step) % len(self.keys)
            self._draw()

    def _draw(self) -> None:
        res = self.state.attack_results
        if not res:
            self.query_one("#results-table", Static).update(Text("no attack results yet: press j on the main "
                                                                 "screen to launch a JSMA sweep", style="dim"))
            return
        models = sorted({r.model for r in res.values()}, key=["baseline", "teacher", "student"].index)
        table = Table(title="JSMA success rate (share of sample x target attacks reaching the target)",
                      title_justify="left")
        table.add_column("model")
        for o in OUTPUTS:
            table.add_column(o + (" (paper)" if o == "softmax" else ""), justify="right")
        acc = self.state.summary.accuracy if self.state.summary else {}
        table.add_column("accuracy", justify="right")
        for m in models:
            cells = []
            for o in OUTPUTS:
                r = res.get(f"{m}-{o}")
                cells.append("–" if r is None
                             else f"{100 * r.success_rate:.1f}% ({r.n_succeeded}/{r.n_attacks})")
            table.add_row(m, *cells, f"{100 * acc[m]:.1f}%" if m in acc else "–")
        self.query_one("#results-table", Static).update(table)
        key = self.keys[self.index]
        r = res[key]
        self.query_one("#results-matrix", Static).update(self._matrix(key, r))
        self.query_one("#results-examples", Static).update(self._examples(r))

    @staticmethod
    def _matrix(key: str, r: AttackFinished) -> Table:
        m = Table(title=f"{key}: success % by source (row) x target (col)   [←/→ other results]",
                  title_justify="left", box=None, padding=(0, 1))
        m.add_column("src", style="dim")
        for t in range(10):
            m.add_column(str(t), justify="right")
        att, win = r.matrix["attempts"], r.matrix["successes"]
        for s in range(10):
            row = []
            for t in range(10):
                row.append("·" if att[s][t] == 0 else f"{100 * win[s][t] / att[s][t]:.0f}")
            m.add_row(str(s), *row)
        ended = ", ".join(f"{k} {v}" for k, v in r.ended.items() if v)
        m.caption = f"ended: {ended}; rule when no pair qualifies: {r.no_pair_rule}"
        return m

    @staticmethod
    def _examples(r: AttackFinished) -> Table:
        grid = Table(title="original → adversarial (changed pixels red)", title_justify="left", box=None,
                     padding=(0, 1))
        side = r.examples[0].side if r.examples else 28
        for _ in range(2):  # an image is never squeezed: a cut image would hide the changed pixels
            grid.add_column(min_width=side, no_wrap=True)
        grid.add_column(no_wrap=True)
        for ex in r.examples[:2]:
            changed = [abs(a - b) > 1e-6 for a, b in zip(ex.x, ex.x_adv, strict=True)]
            tag = Text(f"{ex.label}→{ex.target}\n" + ("✓" if ex.success else f"✗ ({ex.prediction})")
                       + f"\n{sum(changed)} px", style="green" if ex.success else "red")
            grid.add_row(half_block(ex.x, ex.side, 1), half_block(ex.x_adv, ex.side, 1, changed), tag)
        return grid
