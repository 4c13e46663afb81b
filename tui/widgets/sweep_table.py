"""The Sweep pane's table of trials: one row per trial, its state in its colour.

It shows; it does not decide: the pane hands it the trials in the order to show
(`show_trials`). Row keys are the trial numbers (as strings).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from core.sweep import COMPLETE, FAILED, INTERRUPTED, PRUNED, RUNNING, TrialView
from core.text import one_line
from tui.themes import theme_color

# A trial's state -> the theme colour it is shown in.
STATE_COLORS = {COMPLETE: "success", RUNNING: "accent", PRUNED: "warning", FAILED: "error",
                INTERRUPTED: "text-muted"}


def param_text(value: Any) -> str:
    """A sampled value, short: 0.00123 -> 1.23e-03, 128 -> 128."""
    if isinstance(value, float):
        return f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 or value == 0 else f"{value:.2e}"
    return one_line(str(value))


def loss_text(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"


class SweepTable(DataTable):
    DEFAULT_CSS = """
    SweepTable {
        scrollbar-size-vertical: 1;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False,
                         cursor_foreground_priority="renderable", **kwargs)
        self.trials: list[TrialView] = []
        self._best: int | None = None


    def show_trials(self, trials: list[TrialView], space: list[str], best: int | None) -> None:
        """Show `trials` in this order; `space`: the searched fields (a column each, by the
        last part of their name); `best`: the best trial's number (marked). The cursor stays
        on its trial."""
        if trials == self.trials and best == self._best and \
                len(self.columns) == 6 + len(space):
            return  # (nothing moved: no redraw, the cursor and scroll stay)
        cursor = self.cursor_key()
        self.trials, self._best = list(trials), best
        self.clear(columns=True)
        self.add_column("#", key="number")
        for name in space:
            self.add_column(name.rsplit(".", 1)[-1], key=name)
        for label in ("step", "val", "best", "state", "reason"):
            self.add_column(label, key=label)
        for t in trials:
            color = theme_color(self.app, STATE_COLORS.get(t.state, "text"))
            mark = "*" if t.number == best else " "
            row: list[Any] = [Text(f"{mark}{t.number}", style="bold" if mark == "*" else "")]
            row += [param_text(t.params[n]) if n in t.params else "" for n in space]
            row += [str(t.step), loss_text(t.val_loss), loss_text(t.best),
                    Text(t.state, style=color),
                    Text(one_line(t.reason)[:40], style="dim")]
            self.add_row(*row, key=str(t.number))
        # A height of its own (the header and a line a trial; max-height in sweep.tcss caps
        # it): with `height: auto` the layout could run before DataTable had measured its new
        # rows (it does so when idle) and leave the table 0 lines high for good, under load.
        self.styles.height = 1 + len(trials)
        if cursor is not None and cursor in self.rows:
            self.move_cursor(row=self.get_row_index(cursor), animate=False)

    def cursor_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # no such cell (an empty table)
            return None

    def cursor_trial(self) -> TrialView | None:
        key = self.cursor_key()
        return next((t for t in self.trials if str(t.number) == key), None)
