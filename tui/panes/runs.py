"""The Runs pane: every run under the session's runs folder, curves overlaid, open, resume,
export.

The table lists `core.runs.list_runs(runs_root)` (the session's own runs first); enter puts the
run under the cursor on the plot (a coloured mark in the first column) or takes it off. Run
folders are read in thread workers (a run's metrics.jsonl can be long), when the pane is shown,
on the refresh key and when a training run ends; a run's curves are read once and read again
only when its metrics file changed.

The plot shows, per run and in the run's colour, the train loss (a line; TensorBoard's
debiased EMA of it with smoothing on, as in the Train pane) and the validation loss (dots), or
the gradient norm; against the step, the tokens seen or the wall time (a key cycles each). A
legend above it names each run in its colour. With no run overlaid it shows the run under the
cursor, so the pane never opens on an empty plot.

Runs can be named and annotated (kept in their run.json by `core.runs.set_run_label`); a
panel lists the session fields that differ between the runs overlaid (`core.runs.hparam_diff`)
and the notes of the run under the cursor.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.color import Color, ColorParseError
from textual.content import Content
from textual.widgets import Static
from textual.worker import Worker, WorkerState, get_current_worker

from core import messages as msg
from core.errors import LlmlabError
from core.runs import (
    DAMAGED,
    LOST,
    LOST_NO_CHECKPOINT,
    RunSummary,
    export_csv,
    has_checkpoint,
    hparam_diff,
    list_runs,
    set_run_label,
)
from core.text import one_line
from tui.commands import PaletteCommand
from tui.document import SessionDocument
from tui.keymap import bind
from tui.messages import LoadModelRequest, ResumeRunRequest
from tui.panes.base import Pane
from tui.run_curves import RunCurves, metrics_stamp, read_curves
from tui.runs_text import diff_lines
from tui.screens.confirm import ConfirmScreen
from tui.screens.path_picker import PathPickerScreen
from tui.screens.run_label import RunLabelScreen
from tui.smoothing import SMOOTHING_WEIGHT, debiased_ema
from tui.text import middle_ellipsis
from tui.widgets.metric_plot import MetricPlot, PlotData, Series
from tui.widgets.runs_table import RunsTable

# One colour per run overlaid, in this order: the plot colours every theme defines.
RUN_COLORS = ("plot-train", "plot-val", "plot-acc", "plot-lr", "plot-marker", "plot-smooth")
VAL_MARKER = "·"  # the val loss: a dotted line (the train loss is braille)


AXES = ("step", "tokens", "time")  # what the x-axis can be, in the order a key cycles them
AXIS_NAMES = {"step": "step", "tokens": "tokens", "time": "wall time (s)"}
METRICS = ("loss", "grad_norm")  # what the plot can show, in the order a key cycles them
METRIC_TITLES = {"loss": "loss: train (line), val (dots)", "grad_norm": "gradient norm"}


class RunsPane(Pane):
    KEY = "r"
    TITLE = "Runs"
    ABOUT = "compare, open, resume and export runs"
    BINDINGS: ClassVar[list] = [
        bind("runs.select", "toggle_select", "Overlay",
             help="Put the run under the cursor on the plot / take it off"),
        bind("runs.open", "open_run", "Open",
             help="Load the run for the Prune and Generate panes and the surprise view"),
        bind("runs.resume", "resume_run", "Resume",
             help="Resume training the run from its latest checkpoint"),
        bind("runs.export", "export", "CSV",
             help="Export the metrics of the runs on the plot (or the one under the cursor) "
                  "to a CSV file"),
        bind("runs.refresh", "refresh_runs", "Refresh", show=False,
             help="Read the runs folder again"),
        bind("runs.smoothing", "toggle_smoothing", "Smooth", show=False,
             help="Plot: smoothing of the train loss (debiased EMA) on/off"),
        bind("runs.log_scale", "toggle_log_scale", "Log", show=False,
             help="Plot: logarithmic loss axis on/off"),
        bind("runs.x_axis", "cycle_x_axis", "X-axis", show=False,
             help="Plot: x-axis by step, tokens seen or wall time"),
        bind("runs.metric", "cycle_metric", "Metric", show=False,
             help="Plot: the loss (train and val) or the gradient norm"),
        bind("runs.label", "label_run", "Name", show=False,
             help="Name the run under the cursor and write notes on it (kept in run.json)"),
        bind("runs.diff", "toggle_diff", "Diff", show=False,
             help="The session fields that differ between the runs overlaid, on/off"),
    ]
    ENGINE_EVENTS = (msg.Status, msg.ModelLoaded, msg.Error)

    def __init__(self, doc: SessionDocument, **kwargs: Any) -> None:
        super().__init__(doc, **kwargs)
        self._shown_for: tuple[Path, str] | None = None  # (runs folder, session name)
        self.runs: list[RunSummary] = []
        self.selected: dict[str, str] = {}  # run path -> its colour variable, in order
        self.preview: str | None = None  # the run under the cursor (plotted if none is selected)
        self.curves: dict[str, RunCurves] = {}
        self.smoothing = True
        self.log_scale = False
        self.x_axis = AXES[0]
        self.metric = METRICS[0]
        self.show_diff = False
        self.scans = 0  # runs folder reads shown so far (tests wait on it)
        self.scanned = False
        self.opening: str | None = None  # a run this pane asked the app to load
        self.loaded: str | None = None
        self.exported: tuple[int, Path] | None = None  # the last export: (rows, path)
        self._after_scan: Callable[[], Any] | None = None  # a palette command waiting

    def compose(self) -> ComposeResult:
        yield RunsTable(id="runs-table")
        yield Static("", id="runs-empty")
        yield Static("", id="runs-status")
        yield Static("", id="runs-details")
        yield Static("", id="runs-legend")
        yield MetricPlot(METRIC_TITLES["loss"], id="runs-plot")

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)
        self._show_status()
        self._show_empty()

    @property
    def table(self) -> RunsTable:
        return self.query_one(RunsTable)

    @property
    def plot(self) -> MetricPlot:
        return self.query_one("#runs-plot", MetricPlot)

    # ------------------------------------------------------------------ the session

    def show_session(self, doc: SessionDocument, force: bool = False) -> None:
        """The session changed (or was opened): its runs folder, or which runs are its own
        (listed first), may be others."""
        before, self._shown_for = self._shown_for, (self.runs_root(), doc.session.name)
        if self.is_mounted and self.display and self._shown_for != before:
            self.refresh_runs()

    def runs_root(self) -> Path:
        return self.session.resolve(self.session.train.runs_dir)

    # ------------------------------------------------------------------ reading runs

    def on_show(self) -> None:
        self.refresh_runs()
        if self.runs:
            self.table.focus()

    def on_focus(self) -> None:
        """The app focuses the pane; the keys are the table's (its cursor picks the run)."""
        if self.runs:
            self.table.focus()

    def refresh_runs(self) -> None:
        """Read the runs folder again (in a thread), and the curves of the runs overlaid."""
        root = self.runs_root()
        if root is None:
            return
        wanted = {path: self.curves.get(path) for path in self.selected}
        self._scan(root, wanted)

    @work(thread=True, exclusive=True, group="runs-scan", exit_on_error=False)
    def _scan(self, root: Path, wanted: dict[str, RunCurves | None]
              ) -> tuple[list[RunSummary], dict[str, RunCurves]]:
        runs = list_runs(root)
        worker = get_current_worker()
        curves: dict[str, RunCurves] = {}
        for path, cached in wanted.items():
            if worker.is_cancelled:
                break
            if cached is not None and cached.stamp == metrics_stamp(Path(path)):
                curves[path] = cached
            elif Path(path).is_dir():
                curves[path] = read_curves(Path(path))
        return runs, curves

    @work(thread=True, group="runs-curves", exit_on_error=False)
    def _read_curves(self, path: str) -> tuple[str, RunCurves]:
        return path, read_curves(Path(path))

    @work(thread=True, group="runs-export", exit_on_error=False)
    def _export(self, paths: list[str], target: Path) -> tuple[int, Path]:
        return export_csv([Path(p) for p in paths], target), target

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state == WorkerState.ERROR:
            error = worker.error
            what = {"runs-export": "could not export",
                    "runs-scan": "could not read the runs"}.get(worker.group, "runs")
            reason = (error.strerror or str(error)) if isinstance(error, OSError) else error
            where = f"{error.filename}: " if isinstance(error, OSError) and error.filename \
                else ""
            self.notify(f"{where}{what} ({reason})", severity="error")
            return
        if event.state != WorkerState.SUCCESS:
            return
        if worker.group == "runs-scan":
            runs, curves = worker.result
            self._scanned(runs, curves)
        elif worker.group == "runs-curves":
            path, curves = worker.result
            if path in self.selected or path == self.preview:
                self.curves[path] = curves
                self.redraw()
        elif worker.group == "runs-export":
            rows, target = worker.result
            self.exported = (rows, target)
            self.notify(f"wrote {rows} rows to {target}", timeout=6)

    def _scanned(self, runs: list[RunSummary], curves: dict[str, RunCurves]) -> None:
        current = self.session.name if self.session else ""
        # The session's own runs first (each part newest first, as list_runs gives them).
        self.runs = sorted(runs, key=lambda r: r.session != current)
        present = {str(r.path) for r in self.runs}
        self.selected = {p: c for p, c in self.selected.items() if p in present}
        self.curves = {p: c for p, c in {**self.curves, **curves}.items()
                       if p in self.selected or p == self.preview and p in present}
        for path in self.selected:
            if path not in self.curves:
                self._read_curves(path)
        had_focus = self.has_focus or self.table.has_focus
        self.scans += 1
        self.scanned = True
        self._show_rows()
        self._show_empty()
        self._show_status()
        self._show_details()
        self.redraw()
        if had_focus and self.runs:
            self.table.focus()
        waiting, self._after_scan = self._after_scan, None
        if waiting is not None:
            waiting()

    def _show_rows(self) -> None:
        self.table.show_runs(self.runs, self.selected,
                             self.session.name if self.session else "")

    def _show_empty(self) -> None:
        empty = self.query_one("#runs-empty", Static)
        none = self.scanned and not self.runs
        empty.display = none
        self.table.display = not none
        self.plot.display = not none
        self.query_one("#runs-legend").display = not none
        if none and self.session is not None:
            empty.update(f"No runs yet in {self.session.train.runs_dir}. Press "
                         f"{self._key('train.start')} to train the session "
                         f"'{self.session.name}': its run shows here, and "
                         f"{self._key('runs.select')} puts runs on the plot to compare.")

    def _theme_changed(self, _theme: Any) -> None:
        if self.runs:
            self.table.redisplay()

    # ------------------------------------------------------------------ engine events

    def engine_event(self, event: msg.Event) -> None:
        match event:
            case msg.Status() if event.state.ended:
                self.refresh_runs()
            case msg.ModelLoaded():
                self._model_loaded(event)
            case msg.Error() if self.opening is not None and event.request_id and \
                    event.request_id == self.model_request:
                # The load this pane asked for failed (the app says why): no longer under way.
                self.opening = None
                self._show_status()

    def _model_loaded(self, event: msg.ModelLoaded) -> None:
        self.loaded = event.source
        if self.opening is not None and event.source == self.opening:
            self.opening = None
            self.notify(f"{self._label(self.loaded)} is loaded: the Prune "
                        f"({self._key('app.prune')}) and Generate "
                        f"({self._key('app.generate')}) panes use it", timeout=6)
        self._show_status()

    # ------------------------------------------------------------------ actions

    def _cursor_run(self) -> RunSummary | None:
        run = self.table.cursor_run() if self.runs else None
        if run is None:
            self.notify("no run here yet: train one "
                        f"({self._key('train.start')})", severity="warning")
        return run

    def action_toggle_select(self) -> None:
        run = self._cursor_run()
        if run is None:
            return
        path = str(run.path)
        if path in self.selected:
            del self.selected[path]
            if path != self.preview:
                self.curves.pop(path, None)
            if not self.selected and self.preview and self.preview not in self.curves:
                self._read_curves(self.preview)  # (the plot falls back on the cursor's run)
        else:
            used = set(self.selected.values())
            free = [c for c in RUN_COLORS if c not in used]
            self.selected[path] = free[0] if free else RUN_COLORS[len(used) % len(RUN_COLORS)]
            self._read_curves(path)
        self._show_rows()
        self._show_status()
        self._show_details()
        self.redraw()

    def action_open_run(self) -> None:
        run = self._cursor_run()
        if run is None:
            return
        self.opening = str(run.path)
        self._show_status()
        self.post_message(LoadModelRequest(str(run.path)))

    def action_resume_run(self) -> None:
        """Resume the run from its latest checkpoint; a run that has none (lost before its
        first one) can only start again: offer that, from its frozen session."""
        run = self._cursor_run()
        if run is None:
            return
        path = str(run.path)
        if run.status == "running" or has_checkpoint(run.path):
            self.post_message(ResumeRunRequest(path))
            return
        status = one_line(run.status if run.status.endswith("no checkpoint") else (
            f"{run.status}, no checkpoint"))
        self.app.push_screen(
            ConfirmScreen(f"{self._label(path)}: {status} to resume from.\n"
                          "Start a new run from its session?", yes="start again", no="cancel"),
            lambda yes: self.post_message(ResumeRunRequest(path, fresh=True)) if yes else None)

    def action_refresh_runs(self) -> None:
        self.refresh_runs()

    def action_toggle_smoothing(self) -> None:
        self.smoothing = not self.smoothing
        self._show_status()
        self.redraw()

    def action_toggle_log_scale(self) -> None:
        self.log_scale = not self.log_scale
        self._show_status()
        self.redraw()

    def action_cycle_x_axis(self) -> None:
        """The next x-axis (the plot's title names it)."""
        self.x_axis = AXES[(AXES.index(self.x_axis) + 1) % len(AXES)]
        self.redraw()

    def action_cycle_metric(self) -> None:
        """The next metric (the plot's title names it)."""
        self.metric = METRICS[(METRICS.index(self.metric) + 1) % len(METRICS)]
        self.redraw()

    def action_toggle_diff(self) -> None:
        self.show_diff = not self.show_diff
        self._show_details()

    def action_label_run(self) -> None:
        run = self._cursor_run()
        if run is None:
            return
        path = run.path

        def chosen(result: tuple[str, str] | None) -> None:
            if result is None:
                return
            try:
                set_run_label(path, name=result[0], notes=result[1])
            except (LlmlabError, OSError) as e:
                reason = e.strerror or str(e) if isinstance(e, OSError) else str(e)
                self.notify(f"{path}: could not keep the name ({reason})", severity="error")
                return
            self.refresh_runs()

        self.app.push_screen(RunLabelScreen(self._label(str(path)), run.name, run.notes),
                             chosen)

    def export_paths(self) -> list[str]:
        """The runs to export: those overlaid (in the table's order), else the cursor's."""
        chosen = [str(r.path) for r in self.runs if str(r.path) in self.selected]
        if chosen:
            return chosen
        run = self.table.cursor_run() if self.runs else None
        return [str(run.path)] if run is not None else []

    def action_export(self) -> None:
        paths = self.export_paths()
        if not paths:
            self.notify("no run to export yet: train one "
                        f"({self._key('train.start')})", severity="warning")
            return
        folder = self._export_folder()
        name = "runs" if len(paths) > 1 else Path(paths[0]).parent.name + "-" + \
            Path(paths[0]).name
        n = len(paths)
        title = f"Export the metrics of {n} run{'s' * (n != 1)} to a CSV file"

        def chosen(path: Path | None) -> None:
            if path is None:
                return
            if path.suffix.lower() != ".csv":
                path = path.with_name(path.name + ".csv")
            if path.exists():
                self.app.push_screen(ConfirmScreen(f"{path} exists. Replace it?",
                                                   yes="replace", no="cancel"),
                                     lambda yes: self._export(paths, path) if yes else None)
            else:
                self._export(paths, path)

        self.app.push_screen(PathPickerScreen(title, folder, pick="save", suffixes=(".csv",),
                                              initial=str(folder / f"{name}.csv")), chosen)

    def _export_folder(self) -> Path:
        """Where the export dialog starts: the session file's folder, as the app's save does
        (the working folder for a session that has no file, or a shipped one)."""
        return self.doc.folder()

    # ------------------------------------------------------------------ the plot

    def on_data_table_row_highlighted(self, event: Any) -> None:
        """With nothing overlaid, the plot shows the run under the cursor."""
        run = self.table.cursor_run()
        self.preview = str(run.path) if run is not None else None
        self._show_status()
        self._show_details()
        if self.preview is None or self.selected:
            return
        if self.preview in self.curves:
            self.redraw()
        else:
            self._read_curves(self.preview)

    def plotted(self) -> dict[str, str]:
        """Run folder -> colour of the runs on the plot: those overlaid, else the cursor's."""
        if self.selected or self.preview is None:
            return self.selected
        return {self.preview: RUN_COLORS[0]}

    def plot_data(self) -> PlotData:
        """What the plot shows now (the data a test can read back): per run overlaid (or the
        cursor's, when none is), in the run's colour, its train loss (smoothed or not) and val
        loss, or its gradient norm, against the chosen x-axis."""
        series: list[Series] = []
        for path, color in self.plotted().items():
            curves = self.curves.get(path)
            if curves is None:
                continue
            name = self._label(path)
            if self.metric == "loss":
                series.append(Series(f"{name} train",
                                     *self._smoothed(curves.train_loss.on(self.x_axis)), color))
                series.append(Series(f"{name} val", *curves.val_loss.on(self.x_axis), color,
                                     marker=VAL_MARKER))
            else:
                series.append(Series(f"{name} grad norm",
                                     *self._smoothed(curves.grad_norm.on(self.x_axis)), color))
        title = f"{METRIC_TITLES[self.metric]} by {AXIS_NAMES[self.x_axis]}"
        return PlotData(series, log_y=self.log_scale, title=title)

    def _smoothed(self, curve: tuple[list[float], list[float]]
                  ) -> tuple[list[float], list[float]]:
        xs, values = curve
        if self.smoothing and len(values) > 1:
            values = debiased_ema(values, SMOOTHING_WEIGHT)
        return list(xs), list(values)

    def legend(self) -> list[tuple[str, str]]:
        """(what names the run, its colour variable) of each run on the plot: the run's name
        if it has one, else session/run-id."""
        return [(self._display_name(path), color) for path, color in self.plotted().items()]

    def redraw(self) -> None:
        data = self.plot_data()
        self.plot.show(data)
        self._show_legend(empty=not any(s.values for s in data.series))

    def _show_legend(self, empty: bool = False) -> None:
        """Each run on the plot in its colour; and when its curves are read but hold nothing
        for this metric and axis (a run that recorded no wall time...), that says so."""
        parts: list[tuple[str, str] | str] = []
        for name, color in self.legend():
            parts += [("● ", self._color(color)), (one_line(name), "bold"), "  "]
        read = any(path in self.curves for path in self.plotted())
        if parts and empty and read:  # (the plot's title names the metric and the axis)
            parts.append(("none recorded", "$text-muted"))
        elif parts and self.metric == "loss":
            parts.append(("line train, dots val", "$text-muted"))
        self.query_one("#runs-legend", Static).update(Content.assemble(*parts))

    def _color(self, variable: str) -> str:
        """A theme colour variable as a style Content takes."""
        value = self.app.theme_variables.get(variable) or self.app.theme_variables["primary"]
        try:
            return Color.parse(value).hex
        except ColorParseError:
            return ""

    # ------------------------------------------------------------------ details

    def diff_rows(self) -> list[tuple[str, list[Any]]]:
        """The session fields that differ between the runs overlaid (in the table's order)."""
        paths = [Path(r.path) for r in self.runs if str(r.path) in self.selected]
        return hparam_diff(paths) if len(paths) > 1 else []

    def _show_details(self) -> None:
        """The panel under the status line: the hyperparameter diff (when asked for) and the
        notes of the run under the cursor (when it has some); hidden when it has neither."""
        muted = "$text-muted"
        lines: list[Content] = []
        if self.show_diff:
            colors = [self.selected[str(r.path)] for r in self.runs
                      if str(r.path) in self.selected]
            lines += diff_lines(self.diff_rows(), [self._color(c) for c in colors],
                                self._key("runs.select"))
        run = self.table.cursor_run() if self.runs else None
        if run is not None and run.notes:
            lines.append(Content.assemble(("notes ", muted), one_line(run.notes)))
        details = self.query_one("#runs-details", Static)
        details.display = bool(lines)
        details.update(Content("\n").join(lines))

    def _display_name(self, path: str) -> str:
        run = next((r for r in self.runs if str(r.path) == path), None)
        return run.name if run is not None and run.name else self._label(path)

    # ------------------------------------------------------------------ text

    def _label(self, path: str | None) -> str:
        if path is None:
            return ""
        p = Path(path)
        return one_line(f"{p.parent.name}/{p.name}")

    def _show_status(self) -> None:
        """One line: how many runs, how many on the plot, the plot's toggles (their keys as
        the Train pane shows them), and the run loaded for Prune and Generate; or, on a run
        whose training was lost, that and what the resume key does with it."""
        muted, key, value = "$text-muted", "$accent", "bold"
        run = self.table.cursor_run() if self.runs else None
        if run is not None and run.status in (LOST, LOST_NO_CHECKPOINT):
            does = " starts it again" if run.status == LOST_NO_CHECKPOINT else " resumes it"
            tail = f": {run.status}  {self._key('runs.resume')}{does}"
            name = middle_ellipsis(self._label(str(run.path)),
                                   max(8, (self.size.width or 80) - 2 - len(tail)))
            self.query_one("#runs-status", Static).update(Content.assemble(
                (name, value), (f": {run.status}  ", "$error"),
                (self._key("runs.resume"), key), (does, muted)))
            return
        if run is not None and run.status.startswith(DAMAGED):
            name = middle_ellipsis(self._label(str(run.path)),
                                   max(8, (self.size.width or 80) - 4 - len(run.status)))
            self.query_one("#runs-status", Static).update(Content.assemble(
                (name, value), (f": {run.status}", "$error")))
            return
        n = len(self.runs)
        parts: list[tuple[str, str]] = []
        if n:
            parts += [(f"{n} run{'s' * (n != 1)}  ", muted), (self._key("runs.select"), key),
                      (" plotted ", muted), (str(len(self.selected)), value), ("  ", muted)]
        parts += [(self._key("runs.smoothing"), key), (" smooth ", muted),
                  ("on" if self.smoothing else "off", value), ("  ", muted),
                  (self._key("runs.log_scale"), key), (" log ", muted),
                  ("on" if self.log_scale else "off", value)]
        shown = self.opening or self.loaded
        if shown is not None:
            word = "  loading " if self.opening else "  loaded "
            used = sum(len(text) for text, _ in parts) + len(word)
            room = max(8, (self.size.width or 80) - 2 - used)
            parts += [(word, muted), (middle_ellipsis(self._label(shown), room), value)]
        self.query_one("#runs-status", Static).update(Content.assemble(*parts))

    # ------------------------------------------------------------------ palette

    def palette_commands(self) -> list[PaletteCommand]:
        c = PaletteCommand
        return [
            c("Runs: overlay/select", "put the run under the cursor on the plot / take it off",
              self._in_pane(self.action_toggle_select)),
            c("Runs: open for pruning and generation",
              "load the run under the cursor for the Prune and Generate panes",
              self._in_pane(self.action_open_run)),
            c("Runs: resume training", "from the latest checkpoint of the run under the cursor",
              self._in_pane(self.action_resume_run)),
            c("Runs: export CSV", "the metrics of the runs on the plot, or the cursor's",
              self._in_pane(self.action_export)),
            c("Runs: refresh", "read the runs folder again", self._in_pane(self.refresh_runs)),
            c("Runs: toggle smoothing", "TensorBoard's debiased EMA of the train loss",
              self._in_pane(self.action_toggle_smoothing)),
            c("Runs: toggle log scale", "logarithmic loss axis",
              self._in_pane(self.action_toggle_log_scale)),
            c("Runs: x-axis by step / tokens / wall time", "cycle the plot's x-axis",
              self._in_pane(self.action_cycle_x_axis)),
            c("Runs: plot loss / gradient norm", "cycle what the plot shows",
              self._in_pane(self.action_cycle_metric)),
            c("Runs: name and notes", "of the run under the cursor, kept in its run.json",
              self._in_pane(self.action_label_run)),
            c("Runs: hyperparameter diff", "the session fields that differ between the runs "
              "overlaid", self._in_pane(self.action_toggle_diff)),
        ]

    def _in_pane(self, action: Callable[[], Any]) -> Callable[[], Any]:
        """A palette command acts on what the user sees: the Runs pane is shown first."""

        async def run() -> None:
            if self.display and self.scanned:
                action()
            else:
                self._after_scan = action
                if not self.display:  # (shown, it reads the runs folder again)
                    self.post_message(Pane.Show(self.pane_name()))

        return run

