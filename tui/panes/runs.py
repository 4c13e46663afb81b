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
from textual.content import Content
from textual.timer import Timer
from textual.widgets import Static
from textual.worker import Worker, WorkerState, get_current_worker

from core import messages as msg
from core.errors import LlmlabError
from core.folds import group_runs
from core.runs import (
    RunSummary,
    export_csv,
    has_checkpoint,
    hparam_diff,
    list_runs,
    run_status,
    set_run_label,
)
from tui import run_curves, runs_text
from tui.commands import PaletteCommand
from tui.document import SessionDocument
from tui.keymap import bindings, palette_entries
from tui.messages import LoadModelRequest, ResumeFoldsRequest, ResumeRunRequest
from tui.panes.base import Pane
from tui.screens.confirm import ConfirmScreen
from tui.screens.path_picker import PathPickerScreen
from tui.screens.run_label import RunLabelScreen
from tui.widgets.metric_plot import MetricPlot, PlotData
from tui.widgets.runs_table import RunsTable

LIVE_CHECK_EVERY = 2.0  # seconds between looks at the runs shown as running or paused
LIVE_STATUSES = ("running", "paused")


class RunsPane(Pane):
    KEY = "r"
    TITLE = "Runs"
    ABOUT = "compare, open, resume and export runs"
    BINDINGS: ClassVar[list] = bindings("runs")  # (tui/bindings.toml)
    ENGINE_EVENTS = (msg.Status, msg.ModelLoaded, msg.Error)

    def __init__(self, doc: SessionDocument, **kwargs: Any) -> None:
        super().__init__(doc, **kwargs)
        self._shown_for: tuple[Path, str] | None = None  # (runs folder, session name)
        self.runs: list[RunSummary] = []
        self.selected: dict[str, str] = {}  # run path -> its colour variable, in order
        self.preview: str | None = None  # the run under the cursor (plotted if none is selected)
        self.curves: dict[str, run_curves.RunCurves] = {}
        self.smoothing = True
        self.log_scale = False
        self.x_axis = run_curves.AXES[0]
        self.metric = run_curves.METRICS[0]
        self.show_diff = False
        self.scans = 0  # runs folder reads shown so far (tests wait on it)
        self._live_check: Timer | None = None  # looks at live runs again while the pane shows
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
        yield MetricPlot(run_curves.METRIC_TITLES["loss"], id="runs-plot")

    async def widgets_mounted(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)
        self._show_status()
        self._show_empty()
        # (ticking only while the pane shows: on_show resumes it, on_hide pauses it)
        self._live_check = self.set_interval(LIVE_CHECK_EVERY, self._check_live_runs,
                                             name="runs-live-check", pause=not self.display)

    def _check_live_runs(self) -> None:
        """A run shown as running or paused may have ended, or been lost (its job killed,
        its machine gone: the heartbeat went stale): look again, while the pane shows."""
        live = [r for r in self.runs if r.status in LIVE_STATUSES]
        if live and self.display:
            self._recheck(live)

    @work(thread=True, exclusive=True, group="runs-live-check", exit_on_error=False)
    def _recheck(self, live: list[RunSummary]) -> None:
        if any(run_status(r.path) != r.status for r in live) and \
                not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.refresh_runs)

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
        if self.built and self.display and self._shown_for != before:
            self.refresh_runs()

    def runs_root(self) -> Path:
        return self.session.resolve(self.session.train.runs_dir)

    # ------------------------------------------------------------------ reading runs

    def on_show(self) -> None:
        if not self.built:
            return
        if self._live_check is not None:
            self._live_check.resume()
        self.refresh_runs()
        if self.runs:
            self.table.focus()

    def on_hide(self) -> None:
        if self._live_check is not None:
            self._live_check.pause()

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
    def _scan(self, root: Path, wanted: dict[str, run_curves.RunCurves | None]
              ) -> tuple[list[RunSummary], dict[str, run_curves.RunCurves]]:
        worker = get_current_worker()
        return list_runs(root), run_curves.reread_curves(wanted, lambda: worker.is_cancelled)

    @work(thread=True, group="runs-curves", exit_on_error=False)
    def _read_curves(self, path: str) -> tuple[str, run_curves.RunCurves]:
        return path, run_curves.read_curves(Path(path))

    @work(thread=True, group="runs-export", exit_on_error=False)
    def _export(self, paths: list[str], target: Path) -> tuple[int, Path]:
        return export_csv([Path(p) for p in paths], target), target

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state == WorkerState.ERROR:
            self.notify(runs_text.failure_text(worker.group, worker.error), severity="error")
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

    def _scanned(self, runs: list[RunSummary], curves: dict[str, run_curves.RunCurves]) -> None:
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
        self.table.show_runs(group_runs(self.runs), self.selected,
                             self.session.name if self.session else "")

    def _show_empty(self) -> None:
        empty = self.query_one("#runs-empty", Static)
        none = self.scanned and not self.runs
        empty.display = none
        self.table.display = not none
        self.plot.display = not none
        self.query_one("#runs-legend").display = not none
        if none and self.session is not None:
            empty.update(runs_text.no_runs_text(self.session.train.runs_dir,
                                                self.session.name, self._key))

    def _theme_changed(self, _theme: Any) -> None:
        if self.runs:
            self.table.redisplay()

    # ------------------------------------------------------------------ engine events

    def engine_event(self, event: msg.Event) -> None:
        match event:
            case msg.Status() if (event.state.ended or event.state == "running") \
                    and self.display:  # (a run ended, or one began: resumed from this pane)
                self.refresh_runs()  # (hidden: read when it shows)
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
            self.notify(f"{runs_text.run_label(self.loaded)} is loaded: the Prune "
                        f"({self._key('app.prune')}) and Generate "
                        f"({self._key('app.generate')}) panes use it", timeout=6)
        self._show_status()

    # ------------------------------------------------------------------ actions

    def _cursor_run(self) -> RunSummary | None:
        run = self.table.cursor_run() if self.runs else None
        if run is None and (group := self.table.cursor_group()) is not None:
            self.notify(f"a group of {group.summary.of} fold runs: pick one of its folds "
                        "(the rows under it)", severity="warning")
        elif run is None:
            self.notify(f"no run here yet: train one ({self._key('train.start')})",
                        severity="warning")
        return run

    def action_toggle_select(self) -> None:
        """The run under the cursor on or off the plot; on a group of fold runs, all its
        folds (off if all are on)."""
        group = self.table.cursor_group() if self.runs else None
        if group is not None:
            paths = [str(r.path) for r in group.runs]
            every = all(p in self.selected for p in paths)
            for path in paths:
                if (path in self.selected) == every:
                    self._toggle(path)
            self._selection_changed()
            return
        run = self._cursor_run()
        if run is None:
            return
        self._toggle(str(run.path))
        self._selection_changed()

    def _toggle(self, path: str) -> None:
        if path in self.selected:
            del self.selected[path]
            if path != self.preview:
                self.curves.pop(path, None)
            if not self.selected and self.preview and self.preview not in self.curves:
                self._read_curves(self.preview)  # (the plot falls back on the cursor's run)
        else:
            self.selected[path] = run_curves.free_color(list(self.selected.values()))
            self._read_curves(path)

    def _selection_changed(self) -> None:
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
        first one) can only start again: offer that, from its frozen session. On a group of
        fold runs: every fold that stopped before it finished."""
        group = self.table.cursor_group() if self.runs else None
        if group is not None:
            self.post_message(ResumeFoldsRequest([str(r.path) for r in group.runs]))
            return
        run = self._cursor_run()
        if run is None:
            return
        path = str(run.path)
        if run.status in LIVE_STATUSES or has_checkpoint(run.path):
            self.post_message(ResumeRunRequest(path))
            return
        self.app.push_screen(
            ConfirmScreen(runs_text.start_again_question(path, run.status),
                          yes="start again", no="cancel"),
            lambda yes: self.post_message(ResumeRunRequest(path, fresh=True)) if yes else None)

    def action_refresh_runs(self) -> None:
        self.refresh_runs()

    def action_toggle_smoothing(self) -> None:
        self.smoothing = not self.smoothing
        self._show_status()  # (it shows the toggles; the plot's title the axis and metric)
        self.redraw()

    def action_toggle_log_scale(self) -> None:
        self.log_scale = not self.log_scale
        self._show_status()
        self.redraw()

    def action_cycle_x_axis(self) -> None:
        self.x_axis = run_curves.next_in(run_curves.AXES, self.x_axis)
        self.redraw()

    def action_cycle_metric(self) -> None:
        self.metric = run_curves.next_in(run_curves.METRICS, self.metric)
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

        self.app.push_screen(
            RunLabelScreen(runs_text.run_label(str(path)), run.name, run.notes), chosen)

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
            self.notify(f"no run to export yet: train one ({self._key('train.start')})",
                        severity="warning")
            return
        folder = self.doc.folder()  # (the session file's, as the app's save starts in)
        title, name = runs_text.export_offer(paths)

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
                                              initial=str(folder / name)), chosen)

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
        return {self.preview: run_curves.RUN_COLORS[0]}

    def plot_data(self) -> PlotData:
        """What the plot shows now (the data a test can read back): `run_curves.plot_data` of
        the runs on it, named session/run-id."""
        plotted = self.plotted()
        names = {p: runs_text.run_label(p) for p in plotted}
        return run_curves.plot_data(plotted, self.curves, names, self.metric, self.x_axis,
                                    self.smoothing, self.log_scale)

    def legend(self) -> list[tuple[str, str]]:
        """(what names the run, its colour variable) of each run on the plot: the run's name
        if it has one, else session/run-id."""
        return [(runs_text.display_name(self.runs, path), color)
                for path, color in self.plotted().items()]

    def redraw(self) -> None:
        data = self.plot_data()
        self.plot.show(data)
        self._show_legend(empty=not any(s.values for s in data.series))

    def _show_legend(self, empty: bool = False) -> None:
        read = any(path in self.curves for path in self.plotted())
        entries = [(name, self._color(color)) for name, color in self.legend()]
        self.query_one("#runs-legend", Static).update(runs_text.legend_line(
            entries, none_recorded=empty and read, loss=self.metric == "loss"))

    def _color(self, variable: str) -> str:
        return runs_text.theme_style(self.app.theme_variables, variable)

    # ------------------------------------------------------------------ details

    def diff_rows(self) -> list[tuple[str, list[Any]]]:
        """The session fields that differ between the runs overlaid (in the table's order)."""
        paths = [Path(r.path) for r in self.runs if str(r.path) in self.selected]
        return hparam_diff(paths) if len(paths) > 1 else []

    def _show_details(self) -> None:
        """The panel under the status line (`runs_text.details_lines`); hidden when empty."""
        styles = [self._color(self.selected[str(r.path)]) for r in self.runs
                  if str(r.path) in self.selected]
        run = self.table.cursor_run() if self.runs else None
        group = self.table.cursor_group() if self.runs else None
        lines = runs_text.details_lines(self.diff_rows() if self.show_diff else None, styles,
                              self._key("runs.select"), run.notes if run is not None else "",
                              folds=group.summary.line() if group is not None else "")
        details = self.query_one("#runs-details", Static)
        details.display = bool(lines)
        details.update(Content("\n").join(lines))

    def _show_status(self) -> None:
        run = self.table.cursor_run() if self.runs else None
        self.query_one("#runs-status", Static).update(runs_text.status_line(
            run, self._key, self.size.width or 80, runs=len(self.runs),
            plotted=len(self.selected), smoothing=self.smoothing, log_scale=self.log_scale,
            opening=self.opening, loaded=self.loaded))

    # ------------------------------------------------------------------ palette

    def palette_commands(self) -> list[PaletteCommand]:
        """The pane's bindings that are palette commands too (tui/bindings.toml)."""
        return [PaletteCommand(f"Runs: {title}", about,
                               self._in_pane(getattr(self, f"action_{action}")))
                for action, title, about in palette_entries("runs")]

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

