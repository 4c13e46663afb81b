"""The Runs pane's plot data and text as plain functions (no app): what is plotted in which
colour, the status line, the legend, the details panel and the pane's messages."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from core.runs import LOST, LOST_NO_CHECKPOINT, RunSummary
from tui.run_curves import (
    AXES,
    METRICS,
    RUN_COLORS,
    VAL_MARKER,
    Points,
    RunCurves,
    free_color,
    next_in,
    plot_data,
    smoothed,
)
from tui.runs_text import (
    details_lines,
    display_name,
    export_offer,
    failure_text,
    legend_line,
    no_runs_text,
    run_label,
    start_again_question,
    status_line,
    theme_style,
)
from tui.smoothing import SMOOTHING_WEIGHT, debiased_ema

KEYS = {"runs.select": "⏎", "runs.resume": "u", "runs.smoothing": "a", "runs.log_scale": "l",
        "train.start": "^r"}


def _run(path: str, status: str = "finished", name: str = "", notes: str = "") -> RunSummary:
    return RunSummary(Path(path), Path(path).parent.name, Path(path).name, "", "gpt", 1, 10,
                      10, None, None, status, name=name, notes=notes)


def _curves() -> RunCurves:
    curves = RunCurves((0, 0))
    for step, loss in ((1, 3.0), (2, 2.0), (3, 2.5)):
        curves.train_loss.add((step, step * 100.0, None), loss)
        curves.grad_norm.add((step, step * 100.0, float(step)), loss / 10)
    curves.val_loss.add((3, 300.0, 3.0), 2.2)
    return curves


def test_the_plot_choices_cycle_and_each_new_run_takes_the_first_free_colour() -> None:
    assert [next_in(AXES, a) for a in AXES] == ["tokens", "time", "step"]
    assert next_in(METRICS, "grad_norm") == "loss"
    assert free_color([]) == RUN_COLORS[0]
    assert free_color([RUN_COLORS[0], RUN_COLORS[2]]) == RUN_COLORS[1]
    assert free_color(list(RUN_COLORS)) == RUN_COLORS[0]  # (all taken: round again)


def test_smoothing_is_tensorboards_debiased_ema_and_off_leaves_the_values() -> None:
    curve = ([1.0, 2.0, 3.0], [3.0, 2.0, 2.5])
    assert smoothed(curve, False) == ([1.0, 2.0, 3.0], [3.0, 2.0, 2.5])
    xs, values = smoothed(curve, True)
    assert xs == [1.0, 2.0, 3.0]
    assert values == pytest.approx(debiased_ema([3.0, 2.0, 2.5], SMOOTHING_WEIGHT))
    assert smoothed(([5.0], [4.0]), True) == ([5.0], [4.0])


def test_plot_data_names_and_colours_each_run_and_leaves_off_unread_ones() -> None:
    curves = {"r/a": _curves()}
    plotted = {"r/a": RUN_COLORS[0], "r/b": RUN_COLORS[1]}  # r/b not read yet
    names = {"r/a": "r/a", "r/b": "r/b"}
    data = plot_data(plotted, curves, names, "loss", "step", False, True)
    assert [(s.label, s.color, s.marker) for s in data.series] == [
        ("r/a train", RUN_COLORS[0], "braille"), ("r/a val", RUN_COLORS[0], VAL_MARKER)]
    assert data.series[0].steps == [1.0, 2.0, 3.0] and data.series[0].values == [3.0, 2.0, 2.5]
    assert data.log_y and data.title == "loss: train (line), val (dots) by step"
    # The train loss has no wall time: off that axis; the gradient norm has it.
    data = plot_data(plotted, curves, names, "loss", "time", False, False)
    assert data.series[0].values == [] and data.series[1].steps == [3.0]
    data = plot_data(plotted, curves, names, "grad_norm", "tokens", False, False)
    assert [s.label for s in data.series] == ["r/a grad norm"]
    assert data.series[0].steps == [100.0, 200.0, 300.0]
    assert data.title == "gradient norm by tokens"


def test_a_run_is_named_by_its_name_else_session_slash_id() -> None:
    runs = [_run("/x/tiny/run-1", name="high lr"), _run("/x/tiny/run-2")]
    assert run_label("/x/tiny/run-1") == "tiny/run-1" and run_label(None) == ""
    assert display_name(runs, "/x/tiny/run-1") == "high lr"
    assert display_name(runs, "/x/tiny/run-2") == "tiny/run-2"
    assert display_name(runs, "/x/gone/run-3") == "gone/run-3"
    assert run_label("/x/ses\x1bsion/run\n1") == "ses␛sion/run↵1"  # (no control characters)


def test_the_status_line_counts_runs_and_names_the_keys_and_the_loaded_run() -> None:
    line = status_line(None, KEYS.get, 80, runs=3, plotted=1, smoothing=True,
                       log_scale=False, opening=None, loaded="/x/tiny/run-1")
    assert line.plain == "3 runs  ⏎ plotted 1  a smooth on  l log off  loaded tiny/run-1"
    line = status_line(None, KEYS.get, 80, runs=0, plotted=0, smoothing=False,
                       log_scale=True, opening="/x/tiny/run-2", loaded="/x/tiny/run-1")
    assert line.plain == "a smooth off  l log on  loading tiny/run-2"
    narrow = status_line(None, KEYS.get, 40, runs=1, plotted=0, smoothing=True,
                         log_scale=False, opening=None, loaded="/x/" + "s" * 30 + "/run-1")
    assert narrow.plain.startswith("1 run  ") and "…" in narrow.plain


def test_the_status_line_of_a_lost_or_damaged_run_says_so() -> None:
    lost = status_line(_run("/x/tiny/run-1", LOST), KEYS.get, 80, runs=1, plotted=0,
                       smoothing=True, log_scale=False, opening=None, loaded=None)
    assert lost.plain == "tiny/run-1: lost  u resumes it"
    none = status_line(_run("/x/tiny/run-1", LOST_NO_CHECKPOINT), KEYS.get, 80, runs=1,
                       plotted=0, smoothing=True, log_scale=False, opening=None, loaded=None)
    assert none.plain == "tiny/run-1: lost, no checkpoint  u starts it again"
    damaged = status_line(_run("/x/tiny/run-1", "damaged: run.json: not JSON"), KEYS.get, 80,
                          runs=1, plotted=0, smoothing=True, log_scale=False, opening=None,
                          loaded=None)
    assert damaged.plain == "tiny/run-1: damaged: run.json: not JSON"


def test_the_legend_names_each_run_and_says_when_nothing_was_recorded() -> None:
    entries = [("tiny/run-1", "#ff0000"), ("high lr", "#00ff00")]
    assert legend_line(entries, none_recorded=False, loss=True).plain == \
        "● tiny/run-1  ● high lr  line train, dots val"
    assert legend_line(entries, none_recorded=False, loss=False).plain == \
        "● tiny/run-1  ● high lr  "
    assert legend_line(entries, none_recorded=True, loss=True).plain.endswith("none recorded")
    assert legend_line([], none_recorded=True, loss=True).plain == ""


def test_the_details_panel_holds_the_diff_when_asked_and_the_notes() -> None:
    rows = [("train.lr", [0.001, 0.01])]
    assert details_lines(None, ["red", "blue"], "⏎", "") == []
    assert [c.plain for c in details_lines(None, [], "⏎", "first\ntry")] == ["notes first↵try"]
    lines = [c.plain for c in details_lines(rows, ["red", "blue"], "⏎", "ok")]
    assert lines[0].startswith("train.lr 0.001") and "0.01" in lines[0]
    assert lines[1] == "notes ok"
    assert [c.plain for c in details_lines([], ["red"], "⏎", "")] == [
        "overlay two runs or more (⏎) to see the settings that differ"]


def test_the_panes_messages() -> None:
    assert no_runs_text("runs", "tiny", KEYS.get) == (
        "No runs yet in runs. Press ^r to train the session 'tiny': its run shows here, and "
        "⏎ puts runs on the plot to compare.")
    error = FileNotFoundError(errno.ENOENT, "No such file or directory", "/x/out.csv")
    assert failure_text("runs-export", error) == \
        "/x/out.csv: could not export (No such file or directory)"
    assert failure_text("runs-scan", ValueError("bad")) == "could not read the runs (bad)"
    assert export_offer(["/x/tiny/run-1"]) == (
        "Export the metrics of 1 run to a CSV file", "tiny-run-1.csv")
    assert export_offer(["/x/a/1", "/x/b/2"]) == (
        "Export the metrics of 2 runs to a CSV file", "runs.csv")
    assert start_again_question("/x/tiny/run-1", LOST) == (
        "tiny/run-1: lost, no checkpoint to resume from.\nStart a new run from its session?")
    assert start_again_question("/x/tiny/run-1", LOST_NO_CHECKPOINT).startswith(
        "tiny/run-1: lost, no checkpoint to resume")


def test_points_leave_off_an_axis_the_run_did_not_record() -> None:
    points = Points()
    points.add((1.0, None, 0.5), 3.0)
    points.add((2.0, 200.0, None), 2.0)
    assert points.on("step") == ([1.0, 2.0], [3.0, 2.0])
    assert points.on("tokens") == ([200.0], [2.0])
    assert points.on("time") == ([0.5], [3.0])


def test_a_theme_colour_variable_becomes_a_hex_style() -> None:
    variables = {"primary": "#0178d4", "plot-val": "rgb(255, 0, 0)", "plot-acc": "nonsense"}
    assert theme_style(variables, "plot-val") == "#FF0000"
    assert theme_style(variables, "plot-lr") == "#0178D4"  # (the theme lacks it: primary)
    assert theme_style(variables, "plot-acc") == ""
