"""Loss curves: per-batch and per-epoch loss, held-out accuracy, one series per phase, T marks."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from tui.state import DashboardState

PHASES = ("baseline", "teacher", "student")
COLORS = {"baseline": "cyan", "teacher": "orange", "student": "green"}


class LossPlot(PlotextPlot):
    """Phases are drawn one after another on a shared epoch axis (phase k starts at k * epochs)."""

    def update_from(self, state: DashboardState) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.theme("textual-design-dark")
        plt.title("loss (batch ·, epoch ●) and held-out accuracy (right axis)")
        plt.xlabel("epoch (phases in order)")
        epochs = max(state.epochs, 1)
        any_data = False
        for k, phase in enumerate(p for p in PHASES if p in state.batch_loss):
            offset = PHASES.index(phase) * epochs if k >= 0 else 0
            xs, ys = state.batch_loss[phase].copy()
            if xs:
                any_data = True
                plt.plot([x + offset for x in xs], ys, marker="braille", color=COLORS[phase], label=phase)
            ex, ey = state.epoch_loss.get(phase, None).copy() if phase in state.epoch_loss else ([], [])
            if ex:
                plt.scatter([x + offset for x in ex], ey, marker="●", color=COLORS[phase])
            ax, ay = state.val_accuracy[phase].copy() if phase in state.val_accuracy else ([], [])
            if ax:
                plt.plot([x + offset for x in ax], ay, marker="dot", color=COLORS[phase], yside="right")
        for phase, x, _t in state.temperature_marks:
            off = PHASES.index(phase) * epochs if phase in PHASES else 0
            plt.vline(x + off, "red")
        if any_data:
            plt.ylim(0, 1, yside="right")
        self.refresh()
