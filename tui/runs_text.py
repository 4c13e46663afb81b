"""The Runs pane's text: its status line, the legend over the plot, the hyperparameter diff
(the session fields that differ between the runs overlaid, each run's value in its colour) and
its messages. Plain functions of what the pane knows; the keys they name are passed in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.content import Content

from core.runs import DAMAGED, LOST, LOST_NO_CHECKPOINT, RunSummary
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


def details_lines(rows: list[tuple[str, list[Any]]] | None, styles: list[str],
                  select_key: str, notes: str, folds: str = "") -> list[Content]:
    """The panel under the Runs pane's status line: the hyperparameter diff (`rows`; None when
    it is not asked for) and the `notes` of the run under the cursor (when it has some), or
    the val losses of the group of fold runs under it (`folds`, FoldSummary.line)."""
    lines = diff_lines(rows, styles, select_key) if rows is not None else []
    if folds:
        lines.append(Content.assemble(("folds ", "$text-muted"), one_line(folds)))
    if notes:
        lines.append(Content.assemble(("notes ", "$text-muted"), one_line(notes)))
    return lines


def theme_style(variables: dict[str, str], variable: str) -> str:
    """A theme colour variable (a run's "plot-val") as a style Content takes: its hex colour;
    the theme's primary where the theme lacks it; "" (no colour) where it is no colour."""
    try:
        return Color.parse(variables.get(variable) or variables["primary"]).hex
    except ColorParseError:
        return ""


def run_label(path: str | None) -> str:
    """A run folder as the pane names it: session/run-id ("" for none)."""
    if path is None:
        return ""
    p = Path(path)
    return one_line(f"{p.parent.name}/{p.name}")


def display_name(runs: list[RunSummary], path: str) -> str:
    """The run's name if it has one, else session/run-id."""
    run = next((r for r in runs if str(r.path) == path), None)
    return run.name if run is not None and run.name else run_label(path)


def legend_line(entries: list[tuple[str, str]], none_recorded: bool, loss: bool) -> Content:
    """Each run on the plot (name, style of its colour); then, when its curves are read but
    hold nothing for this metric and axis (`none_recorded`: a run that recorded no wall
    time...), that; else, for the loss, how train and val are drawn."""
    parts: list[tuple[str, str] | str] = []
    for name, style in entries:
        parts += [("● ", style), (one_line(name), "bold"), "  "]
    if parts and none_recorded:  # (the plot's title names the metric and the axis)
        parts.append(("none recorded", "$text-muted"))
    elif parts and loss:
        parts.append(("line train, dots val", "$text-muted"))
    return Content.assemble(*parts)


def status_line(run: RunSummary | None, key: Callable[[str], str], width: int, *,
                runs: int, plotted: int, smoothing: bool, log_scale: bool,
                opening: str | None, loaded: str | None) -> Content:
    """The pane's one status line, `width` wide: how many runs (`runs`), how many on the plot,
    the plot's toggles (their keys, `key(binding id)`, as the Train pane shows them), and the
    run loaded (or `opening`) for Prune and Generate; or, when the run under the cursor (`run`)
    was lost, that and what the resume key does with it; or that it is damaged."""
    muted, keyed, value = "$text-muted", "$accent", "bold"
    if run is not None and run.status in (LOST, LOST_NO_CHECKPOINT):
        does = " starts it again" if run.status == LOST_NO_CHECKPOINT else " resumes it"
        tail = f": {run.status}  {key('runs.resume')}{does}"
        name = middle_ellipsis(run_label(str(run.path)), max(8, width - 2 - len(tail)))
        return Content.assemble((name, value), (f": {run.status}  ", "$error"),
                                (key("runs.resume"), keyed), (does, muted))
    if run is not None and run.status.startswith(DAMAGED):
        name = middle_ellipsis(run_label(str(run.path)),
                               max(8, width - 4 - len(run.status)))
        return Content.assemble((name, value), (f": {run.status}", "$error"))
    parts: list[tuple[str, str]] = []
    if runs:
        parts += [(f"{runs} run{'s' * (runs != 1)}  ", muted), (key("runs.select"), keyed),
                  (" plotted ", muted), (str(plotted), value), ("  ", muted)]
    parts += [(key("runs.smoothing"), keyed), (" smooth ", muted),
              ("on" if smoothing else "off", value), ("  ", muted),
              (key("runs.log_scale"), keyed), (" log ", muted),
              ("on" if log_scale else "off", value)]
    shown = opening or loaded
    if shown is not None:
        word = "  loading " if opening else "  loaded "
        room = max(8, width - 2 - sum(len(text) for text, _ in parts) - len(word))
        parts += [(word, muted), (middle_ellipsis(run_label(shown), room), value)]
    return Content.assemble(*parts)


def no_runs_text(runs_dir: Path | str, session: str, key: Callable[[str], str]) -> str:
    """What the pane says in place of the table and the plot when the folder has no run."""
    return (f"No runs yet in {runs_dir}. Press {key('train.start')} to train the session "
            f"'{session}': its run shows here, and {key('runs.select')} puts runs on the plot "
            "to compare.")


def failure_text(group: str, error: BaseException) -> str:
    """One line for a worker of the pane (`group`) that failed: the file and the OS's reason
    when it is an OSError."""
    what = {"runs-export": "could not export",
            "runs-scan": "could not read the runs"}.get(group, "runs")
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{what} ({error.strerror or str(error)})"
    return f"{what} ({error})"


def export_offer(paths: list[str]) -> tuple[str, str]:
    """(the export dialog's title, the file name it proposes) for exporting `paths`."""
    n = len(paths)
    name = "runs" if n > 1 else f"{Path(paths[0]).parent.name}-{Path(paths[0]).name}"
    return f"Export the metrics of {n} run{'s' * (n != 1)} to a CSV file", f"{name}.csv"


def start_again_question(path: str, status: str) -> str:
    """What to ask before resuming a run that has no checkpoint: start it again instead."""
    status = one_line(status if status.endswith("no checkpoint") else
                      f"{status}, no checkpoint")
    return f"{run_label(path)}: {status} to resume from.\nStart a new run from its session?"
