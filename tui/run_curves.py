"""A run's curves for the Runs pane's plot: the train loss, validation loss and gradient norm
of its metrics.jsonl, each point placed on every x-axis (step, tokens seen, seconds); and what
the plot shows of the runs on it (`plot_data`), in their colours.

No widgets (curves are read in a worker thread): what the pane plots, not how."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import LlmlabError
from core.follow import MetricsTail, read_thinned
from core.runs import METRICS_FILE, load_run_session
from tui.smoothing import SMOOTHING_WEIGHT, debiased_ema
from tui.widgets.metric_plot import PlotData, Series

# One colour per run overlaid, in this order: the plot colours every theme defines.
RUN_COLORS = ("plot-train", "plot-val", "plot-acc", "plot-lr", "plot-marker", "plot-smooth")
VAL_MARKER = "·"  # the val loss: a dotted line (the train loss is braille)

AXES = ("step", "tokens", "time")  # what the x-axis can be, in the order a key cycles them
AXIS_NAMES = {"step": "step", "tokens": "tokens", "time": "wall time (s)"}
METRICS = ("loss", "grad_norm")  # what the plot can show, in the order a key cycles them
METRIC_TITLES = {"loss": "loss: train (line), val (dots)", "grad_norm": "gradient norm"}


@dataclass
class Points:
    """One metric of a run: each value with where it lies on every x-axis (None where the run
    did not record it: the point is left off that axis)."""

    step: list[float] = field(default_factory=list)
    tokens: list[float | None] = field(default_factory=list)
    time: list[float | None] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, x: tuple[float, float | None, float | None], value: float) -> None:
        self.step.append(x[0])
        self.tokens.append(x[1])
        self.time.append(x[2])
        self.values.append(value)

    def on(self, axis: str) -> tuple[list[float], list[float]]:
        """(xs, values) against `axis`."""
        pairs = [(x, v) for x, v in zip(getattr(self, axis), self.values, strict=True)
                 if x is not None]
        return [float(x) for x, _ in pairs], [v for _, v in pairs]


@dataclass
class RunCurves:
    """A run's curves, and the metrics file's (mtime, size) they were read at."""

    stamp: tuple[int, int]
    train_loss: Points = field(default_factory=Points)
    val_loss: Points = field(default_factory=Points)
    grad_norm: Points = field(default_factory=Points)


def metrics_stamp(run_dir: Path) -> tuple[int, int]:
    try:
        st = (Path(run_dir) / METRICS_FILE).stat()
    except OSError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)


def read_curves(run_dir: Path) -> RunCurves:
    """The train loss and gradient norm ("train" records) and validation loss ("eval" records
    of the val split, `val_loss`) of a run, each point placed by step, tokens seen (the
    record's `tokens`, else step x batch x context x grad_accum of the frozen session) and
    seconds of training (the record's `elapsed`, else its `time` since the first record).
    A long run's train records are thinned evenly as they are read (a plot shows ~2 points a
    column): a run of a million steps costs a few ten thousand parsed records, not gigabytes."""
    curves = RunCurves(metrics_stamp(run_dir))
    records, _ = read_thinned(MetricsTail(Path(run_dir) / METRICS_FILE))
    per_step = _tokens_per_step(run_dir)
    t0 = next((r["time"] for r in records if _number(r.get("time"))), None)
    for record in records:
        step = record.get("step")
        if not _number(step):
            continue
        x = (float(step), _tokens(record, step, per_step), _seconds(record, t0))
        kind = record.get("type")
        if kind == "train" and _number(record.get("loss")):
            curves.train_loss.add(x, float(record["loss"]))
            if _number(record.get("grad_norm")):
                curves.grad_norm.add(x, float(record["grad_norm"]))
        elif kind == "eval" and record.get("split", "val") == "val":
            loss = record.get("val_loss", record.get("loss"))
            if _number(loss):
                curves.val_loss.add(x, float(loss))
    return curves


def reread_curves(wanted: dict[str, RunCurves | None], cancelled: Callable[[], bool]
                  ) -> dict[str, RunCurves]:
    """The curves of the run folders `wanted` (folder -> the curves read before, or None):
    those read before kept while the metrics file is unchanged (same mtime and size), the
    others read again; a folder that is gone left out; stops early when `cancelled()`."""
    curves: dict[str, RunCurves] = {}
    for path, cached in wanted.items():
        if cancelled():
            break
        if cached is not None and cached.stamp == metrics_stamp(Path(path)):
            curves[path] = cached
        elif Path(path).is_dir():
            curves[path] = read_curves(Path(path))
    return curves


def _tokens_per_step(run_dir: Path) -> int | None:
    try:
        s = load_run_session(run_dir)
    except (LlmlabError, OSError):
        return None
    return s.train.batch_size * s.train.grad_accum * s.model.context


def _tokens(record: dict[str, Any], step: float, per_step: int | None) -> float | None:
    if _number(record.get("tokens")):
        return float(record["tokens"])
    return float(step) * per_step if per_step else None


def _seconds(record: dict[str, Any], t0: float | None) -> float | None:
    if _number(record.get("elapsed")):
        return float(record["elapsed"])
    if t0 is not None and _number(record.get("time")):
        return float(record["time"]) - t0
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


# ---------------------------------------------------------------------- what the plot shows


def next_in(cycle: tuple[str, ...], current: str) -> str:
    """The choice after `current` in `cycle` (an x-axis, a metric), round again at its end."""
    return cycle[(cycle.index(current) + 1) % len(cycle)]


def free_color(used: list[str]) -> str:
    """The colour for one more run overlaid: the first of RUN_COLORS no run has, else round
    the list again."""
    free = [c for c in RUN_COLORS if c not in used]
    return free[0] if free else RUN_COLORS[len(set(used)) % len(RUN_COLORS)]


def smoothed(curve: tuple[list[float], list[float]], smoothing: bool
             ) -> tuple[list[float], list[float]]:
    """(xs, values), the values as TensorBoard's debiased EMA when `smoothing` is on (as the
    Train pane smooths)."""
    xs, values = curve
    if smoothing and len(values) > 1:
        values = debiased_ema(values, SMOOTHING_WEIGHT)
    return list(xs), list(values)


def plot_data(plotted: dict[str, str], curves: dict[str, RunCurves], names: dict[str, str],
              metric: str, x_axis: str, smoothing: bool, log_scale: bool) -> PlotData:
    """What the plot shows: per run on it (`plotted`: run folder -> colour variable) whose
    curves are read, named by `names[folder]` and in its colour, the train loss (smoothed or
    not) and val loss (dots), or the gradient norm, against `x_axis`."""
    series: list[Series] = []
    for path, color in plotted.items():
        run = curves.get(path)
        if run is None:
            continue
        name = names[path]
        if metric == "loss":
            series.append(Series(f"{name} train",
                                 *smoothed(run.train_loss.on(x_axis), smoothing), color))
            series.append(Series(f"{name} val", *run.val_loss.on(x_axis), color,
                                 marker=VAL_MARKER))
        else:
            series.append(Series(f"{name} grad norm",
                                 *smoothed(run.grad_norm.on(x_axis), smoothing), color))
    title = f"{METRIC_TITLES[metric]} by {AXIS_NAMES[x_axis]}"
    return PlotData(series, log_y=log_scale, title=title)
