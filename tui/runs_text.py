"""The Runs pane's hyperparameter diff as lines of text: the session fields that differ
between the runs overlaid, each run's value in its colour."""

from __future__ import annotations

from typing import Any

from textual.content import Content

from core.text import one_line
from tui.nudge import format_number
from tui.text import middle_ellipsis

DIFF_ROWS = 4  # fields of the hyperparameter diff shown (then "and N more")


def _shown(value: Any) -> str:
    """A session value in a few characters: numbers as the form shows them."""
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return one_line(str(value))


def diff_lines(rows: list[tuple[str, list[Any]]], styles: list[str],
               select_key: str) -> list[Content]:
    """`rows` (field, a value per run) with each run's value in its style (a colour); a line
    that says why there is nothing to compare when fewer than two runs are overlaid."""
    muted = "$text-muted"
    if len(styles) < 2:
        return [Content.styled(f"overlay two runs or more ({select_key}) to "
                               "see the settings that differ", muted)]
    if not rows:
        return [Content.styled("the runs overlaid have the same settings", muted)]
    shown = rows[:DIFF_ROWS]
    cells = [[middle_ellipsis(_shown(v), 18) for v in values] for _, values in shown]
    widths = [max(len(row[i]) for row in cells) for i in range(len(styles))]
    name_width = max(len(name) for name, _ in shown)
    lines = []
    for (name, _), row in zip(shown, cells, strict=True):
        parts: list[tuple[str, str] | str] = [(name.ljust(name_width) + " ", muted)]
        for cell, width, style in zip(row, widths, styles, strict=True):
            parts += [(cell.ljust(width), style), "  "]
        lines.append(Content.assemble(*parts))
    more = len(rows) - len(shown)
    if more:
        verb = "fields differ" if more > 1 else "field differs"
        lines.append(Content.styled(f"and {more} more {verb}", muted))
    return lines
