"""The table of the Runs pane: one row per run folder, a coloured mark on the runs overlaid.

Laid out for 80 columns: no cell padding (each cell carries its own trailing space), the
run's name takes what the fixed columns leave. The table shows; it does not decide: the pane
tells it which runs are marked and in which colour (`show_runs`).
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import DataTable

from core.estimate import human_count
from core.folds import FoldGroup
from core.runs import RunSummary
from core.text import one_line
from tui.text import middle_ellipsis
from tui.themes import theme_color

MARK = "●"
# (label, width, right-aligned); the name column (None) takes the rest. The model column
# widens to hold a job's processes ("gpt×16") when a run listed had several.
COLUMNS: tuple[tuple[str, int | None, bool], ...] = (
    ("", 2, False),
    ("run", None, False),
    ("date", 12, False),
    ("model", 6, False),
    ("params", 7, True),
    ("steps", 10, True),
    ("val", 7, True),
    ("tok/s", 6, True),
    ("status", 8, False),
)
MIN_NAME_WIDTH = 12
MAX_MODEL_WIDTH = 10  # "lstm×1024 "


def short_date(created: str) -> str:
    """'2025-01-31T12:00:05' -> '01-31 12:00' (the year is rarely the question)."""
    try:
        return datetime.fromisoformat(created).strftime("%m-%d %H:%M")
    except ValueError:
        return created[:11]


def run_name(run: RunSummary) -> str:
    """session/run-id, or the name the user gave the run (the id stays in `llmlab runs` and
    in the title of the name dialog)."""
    return one_line(run.name or f"{run.session}/{run.run_id}")


def fit(text: str, width: int, right: bool = False, last: bool = False) -> str:
    """`text` in `width` cells, the last one a space between columns (unless `last`),
    ellipsized in the middle so both the session and the end of a run id stay readable."""
    room = width if last else width - 1
    if len(text) <= room:
        text = text.rjust(room) if right else text.ljust(room)
        return text if last else text + " "
    return fit(middle_ellipsis(text, room), width, right, last)


def cells(run: RunSummary) -> list[str]:
    """The texts of a run's cells after the mark and the name (run.json's texts without
    control characters: someone else may have written it)."""
    steps = f"{run.steps}/{run.max_steps}" if run.max_steps else str(run.steps)
    return [one_line(c) for c in [
        short_date(run.created),
        run.model,
        human_count(run.params) if run.params else "?",
        steps,
        f"{run.best_val_loss:.3f}" if run.best_val_loss is not None else "-",
        human_count(round(run.tokens_per_s)) if run.tokens_per_s is not None else "-",
        run.status.split(",")[0].split(":")[0],  # lost, damaged: the pane says more
    ]]


def group_cells(group: FoldGroup) -> tuple[str, list[str]]:
    """The name and cells of a group of fold runs' row: its val is the folds' mean, the name
    says how many folds and their spread (the std)."""
    first, summary = group.runs[0], group.summary
    spread = f" ±{summary.std:.3f}" if summary.std is not None else ""
    name = one_line(f"{first.session}/{summary.group}: {summary.of} folds{spread}")
    return name, [one_line(c) for c in [
        short_date(first.created), first.model,
        human_count(first.params) if first.params else "?",
        f"{len(summary.done)}/{summary.of} fold", f"{summary.mean:.3f}" if summary.mean
        is not None else "-", "-", group.status.split(",")[0].split(":")[0]]]


class RunsTable(DataTable):
    """Row keys are the runs' paths (as strings), and a group of fold runs' `FoldGroup.key`
    (its folds' rows follow it, indented). Enter is left to the pane (it toggles the run in
    the overlay, a key the user's keymap may move)."""

    DEFAULT_CSS = """
    RunsTable {
        scrollbar-size-vertical: 1;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", cell_padding=0, zebra_stripes=False,
                         cursor_foreground_priority="renderable", **kwargs)
        self.runs: list[RunSummary] = []
        self.rows_shown: list[RunSummary | FoldGroup] = []
        self.groups: dict[str, FoldGroup] = {}
        self._marks: dict[str, str] = {}
        self._current = ""
        self._name_width = 0
        self._widths: list[int | None] = [w for _, w, _ in COLUMNS]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "select_cursor":
            return False  # enter goes on to the pane's binding
        return super().check_action(action, parameters)

    def widths(self, runs: list[RunSummary]) -> list[int | None]:
        """Each column's width for `runs` (None: the name's, what the others leave)."""
        model = min(MAX_MODEL_WIDTH, max(
            [len(run.model) + 1 for run in runs if run.world_size > 1], default=0))
        return [max(width, model) if label == "model" and width else width
                for label, width, _ in COLUMNS]

    def name_width(self, runs: list[RunSummary], rows: int | None = None) -> int:
        """What the fixed columns leave to the name; `rows`: the table's rows if not one
        per run (a group of fold runs has a row of its own)."""
        fixed = sum(width for width in self.widths(runs) if width is not None)
        rows = len(runs) if rows is None else rows
        available = self.size.width or 80
        max_height = self.styles.max_height
        if max_height is not None and max_height.is_cells and rows + 1 > max_height.value:
            available -= 1  # the vertical scrollbar
        return max(MIN_NAME_WIDTH, available - fixed)


    def show_runs(self, rows: list[RunSummary | FoldGroup], marks: dict[str, str],
                  current: str) -> None:
        """Show `rows` (runs, and groups of fold runs: core.folds.group_runs); `marks`: path
        -> theme colour variable of the runs overlaid; `current`: the session whose runs are
        not dimmed. The cursor stays on its run."""
        cursor_key = self.cursor_key()
        self.rows_shown = list(rows)
        self.groups = {r.key: r for r in rows if isinstance(r, FoldGroup)}
        runs = [run for r in rows for run in (r.runs if isinstance(r, FoldGroup) else [r])]
        self.runs = runs
        self._marks = dict(marks)
        self._current = current
        self._name_width = self.name_width(runs, len(runs) + len(self.groups))
        widths = self._widths = self.widths(runs)
        self.clear(columns=True)
        for i, ((label, _, right), width) in enumerate(zip(COLUMNS, widths, strict=True)):
            w = self._name_width if width is None else width
            self.add_column(fit(label, w, right, last=i == len(COLUMNS) - 1), width=w,
                            key=label or "mark")
        for item in rows:
            if isinstance(item, FoldGroup):
                name, values = group_cells(item)
                self._add(item.key, "", name, values, item.runs[0].session != current)
                for run in item.runs:
                    fold = f"fold {run.folds[1]} " if run.folds and not run.name else ""
                    self._add(str(run.path), marks.get(str(run.path)),
                              f"  {fold}{run_name(run)}", cells(run), run.session != current)
            else:
                self._add(str(item.path), marks.get(str(item.path)), run_name(item),
                          cells(item), item.session != current)
        self.styles.height = 1 + self.row_count  # (as SweepTable: not left to height: auto)
        if cursor_key is not None and cursor_key in self.rows:
            self.move_cursor(row=self.get_row_index(cursor_key), animate=False)

    def _add(self, key: str, color: str | None, name: str, values: list[str],
             dim: bool) -> None:
        mark = Text(MARK + " ", style=theme_color(self.app, color)) if color else Text("  ")
        style = "dim" if dim else ""
        row = [mark, Text(fit(name, self._name_width), style=style)]
        for i, ((_, _, right), width, value) in enumerate(
                zip(COLUMNS[2:], self._widths[2:], values, strict=True)):
            assert width is not None
            last = i == len(COLUMNS) - 3
            row.append(Text(fit(value, width, right, last), style=style))
        self.add_row(*row, key=key)

    def cursor_group(self) -> FoldGroup | None:
        """The group of fold runs whose row is under the cursor."""
        key = self.cursor_key()
        return self.groups.get(key) if key is not None else None

    def cursor_key(self) -> str | None:
        """The path of the run under the cursor."""
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # no such cell (an empty table)
            return None
        return key.value

    def cursor_run(self) -> RunSummary | None:
        key = self.cursor_key()
        return next((r for r in self.runs if str(r.path) == key), None)

    def on_resize(self) -> None:
        """The name column takes the width the others leave: lay out again for a new one."""
        if self.runs and self.name_width(self.runs, self.row_count) != self._name_width:
            self.call_after_refresh(self.redisplay)

    def redisplay(self) -> None:
        """Show the same runs again (after a resize or a change of theme)."""
        self.show_runs(self.rows_shown, self._marks, self._current)
