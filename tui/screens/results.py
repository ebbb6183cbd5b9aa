"""Results: success rate per model x attacked output, the source x target matrix, adversarial examples."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from engine.client import AttackFinished, CWFinished
from tui.state import METHOD_NAMES, DashboardState
from tui.widgets.image import half_block

OUTPUTS = ("softmax", "logits", "softmax_T")


class ResultsScreen(Screen[None]):
    BINDINGS = [Binding("escape,r", "app.pop_screen", "back"),
                Binding("right,l", "cycle(1)", "next result"), Binding("left,h", "cycle(-1)", "previous result"),
                Binding("D", "app.download_results", "download", key_display="D",
                        tooltip="report.md and the PNG figures, as browser downloads")]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # downloads reach a browser only: in a terminal the files are already in the run directory
        return self.app.is_web if action == "app.download_results" else True

    def __init__(self, state: DashboardState) -> None:
        super().__init__()
        self.state = state
        self.keys = list(state.attack_results) + list(state.cw_results)
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
        res, cw = self.state.attack_results, self.state.cw_results
        if not res and not cw:
            self.query_one("#results-table", Static).update(Text("no attack results yet: press j on the main "
                                                                 "screen to launch a JSMA sweep", style="dim"))
            return
        models = sorted({r.model for r in [*res.values(), *cw.values()]}, key=["baseline", "teacher", "student"].index)
        methods = [m for m in METHOD_NAMES if any(r.method == m for r in cw.values())]
        table = Table(title="success rate: JSMA on each output (sample x target attacks), C&W on the logits "
                      "(first case, inputs)", title_justify="left")
        table.add_column("model")
        for o in OUTPUTS:
            table.add_column("JSMA " + o + (" (paper)" if o == "softmax" else ""), justify="right")
        for m in methods:
            table.add_column(METHOD_NAMES[m], justify="right")
        acc = self.state.summary.accuracy if self.state.summary else {}
        table.add_column("accuracy", justify="right")
        for m in models:
            cells = []
            for o in OUTPUTS:
                r = res.get(f"{m}-{o}")
                cells.append("–" if r is None
                             else f"{100 * r.success_rate:.1f}% ({r.n_succeeded}/{r.n_attacks})")
            for method in methods:
                c = cw.get(f"{m}-{method}")
                first = next(iter(c.cases.values()), None) if c else None
                cells.append("–" if first is None else f"{100 * first.success_rate:.1f}% "
                             f"({first.succeeded}/{first.inputs})")
            table.add_row(m, *cells, f"{100 * acc[m]:.1f}%" if m in acc else "–")
        table.caption = self._support(models)
        verdicts = self._verdicts()
        self.query_one("#results-table", Static).update(Group(table, verdicts) if verdicts else table)
        key = self.keys[self.index]
        if key in res:
            self.query_one("#results-matrix", Static).update(self._matrix(key, res[key]))
            self.query_one("#results-examples", Static).update(self._examples(res[key]))
        else:
            self.query_one("#results-matrix", Static).update(self._cw_cases(key, cw[key]))
            self.query_one("#results-examples", Static).update(self._examples(cw[key]))

    @staticmethod
    def _matrix(key: str, r: AttackFinished) -> Table:
        # one space before each column and none after: "100" keeps its three digits in the 47 columns
        # the examples leave (with (0, 1) padding rich cut every 100 to "1…")
        m = Table(title=f"{key}: success % by source (row) x target (col)   [←/→ other results]",
                  title_justify="left", box=None, padding=(0, 0, 0, 1))
        m.add_column("src", style="dim", no_wrap=True)
        for t in range(10):
            m.add_column(str(t), justify="right", min_width=3, no_wrap=True)
        att, win = r.matrix["attempts"], r.matrix["successes"]
        for s in range(10):
            row = []
            for t in range(10):
                row.append("·" if att[s][t] == 0 else f"{100 * win[s][t] / att[s][t]:.0f}")
            m.add_row(str(s), *row)
        ended = ", ".join(f"{k} {v}" for k, v in r.ended.items() if v)
        m.caption = f"ended: {ended}; rule when no pair qualifies: {r.no_pair_rule}"
        return m

    def _support(self, models: list[str]) -> str | None:
        """Where each model's input gradient is non-zero: a gradient on few pixels stops white-box
        attacks for a reason a saturated softmax does not explain, so it sits under their numbers."""
        support = self.state.summary.gradient_support if self.state.summary else {}
        parts = []
        for m in models:
            s = support.get(m)
            if s:
                dead = s.dead_unit_share
                parts.append(f"{m} {100 * s.pixel_share:.1f}% of pixels"
                             + ("" if dead is None else f" (dead units {100 * dead:.0f}%)"))
        line = ("input gradient non-zero on: " + ", ".join(parts)) if parts else None
        honesty = self._honesty(models)
        return "\n".join(p for p in (line, honesty) if p) or None

    def _honesty(self, models: list[str]) -> str | None:
        """Whether each model's backward describes its forward: the inputs on which the logits' autograd
        derivatives disagree with finite differences of the forward at an attack's step."""
        parts = []
        for m in models:
            v = self.state.verdicts.get(m)
            h = v.evidence.get("honesty") if v is not None else None
            if h:
                errors = v.evidence.get("honesty_errors") or {}
                first = next(iter(errors.values()), None)
                parts.append(f"{m} {h[0]}/{h[1]} inputs" + ("" if first is None else f" (median error {first:.0e})"))
        return ("backward vs finite differences of the forward, disagreeing: " + ", ".join(parts)) if parts else None

    def _verdicts(self) -> Table | None:
        """Is the robustness real? Each model's verdict and the checks that fired, with their numbers."""
        if not self.state.verdicts:
            return None
        t = Table(title="is the robustness real? (masking checks, measured)", title_justify="left", box=None,
                  padding=(0, 1), show_header=False)
        t.add_column("model", style="bold", no_wrap=True)
        t.add_column("verdict")
        for model, v in self.state.verdicts.items():
            style = {"masked": "bold red", "no sign of masking": "bold green"}.get(v.verdict, "yellow")
            lines = [Text(v.verdict.upper(), style=style)]
            if v.remedy:
                lines.append(Text(f"remedy: {v.remedy}", style="bold"))
            for c in v.checks:
                status = c.status or ("fired" if c.fired else "clear")
                mark = {"fired": "✗ fired    ", "undecided": "? undecided", "clear": "✓ clear    "}.get(status, status)
                lines.append(Text(f"{mark}  {c.name}: {c.evidence}",
                                  style={"fired": "red", "undecided": "yellow"}.get(status, "dim")))
            t.add_row(model, Group(*lines))
        return t

    @staticmethod
    def _cw_cases(key: str, r: CWFinished) -> Table:
        t = Table(title=f"{key}: {METHOD_NAMES.get(r.method, r.method)} on the logits   [←/→ other results]",
                  title_justify="left", box=None, padding=(0, 1))
        for col in ("case", "success", "L0 px", "L2", "L-inf"):
            t.add_column(col, justify="left" if col == "case" else "right")

        def num(v: float | None, fmt: str) -> str:
            return "–" if v is None else format(v, fmt)

        for case, c in r.cases.items():
            t.add_row(case, f"{100 * c.success_rate:.0f}% ({c.succeeded}/{c.inputs})", num(c.mean_l0, ".1f"),
                      num(c.mean_l2, ".2f"), num(c.mean_linf, ".3f"))
        const = "–" if r.median_const is None else f"{r.median_const:.3g}"
        t.caption = (f"{r.n_attacks} attacks, {r.mean_iterations:.0f} Adam iterations each, median c {const}, "
                     f"{r.attacks_per_second:.1f} att/s" + (f"\nreduced: {r.reduced}" if r.reduced else ""))
        return t

    @staticmethod
    def _examples(r: AttackFinished | CWFinished) -> Table:
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
