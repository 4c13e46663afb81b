"""The Sweep pane: the session's Optuna studies, their trials, and the keys to run them.

It follows a study wherever its sweep runs (started here, by `llmlab sweep` in a shell, or on
another machine sharing its storage): core.sweep_view reads the study's storage and the
trials' run folders in a thread, again every few seconds while the pane shows a trial that
runs. A sweep started here is a job of its own (core.launch.launch_sweep) and outlives the
app; stopping it is the Ctrl+C it would get in a shell (SIGINT: its running trials stop, the
study can be resumed), and a stop asked in the study reaches its processes on other machines.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.timer import Timer
from textual.widgets import Static
from textual.worker import get_current_worker

from core.errors import LlmlabError
from core.sweep import COMPLETE, FAILED, PRUNED, RUNNING, TrialView, worker_alive, worker_id
from core.sweep_storage import SweepInfo, list_sweeps, request_stop, sweep_folder
from core.sweep_view import StudyReader, StudyState
from core.text import one_line
from tui.commands import PaletteCommand
from tui.document import SessionDocument
from tui.keymap import bindings, palette_entries
from tui.messages import LoadModelRequest, ResumeRunRequest, SessionEdited
from tui.panes.base import Pane
from tui.widgets.importance_bars import ImportanceBars
from tui.widgets.metric_plot import MetricPlot, PlotData, Series
from tui.widgets.sweep_table import SweepTable, param_text

REFRESH_EVERY = 2.0  # seconds between reads while the pane shows
PLOTS = ("curves", "best", "scatter", "importances")
PLOT_TITLES = {"curves": "val loss of each trial", "best": "best val loss so far by trial",
               "scatter": "val loss against {field}", "importances": "importances"}
SORTS = ("metric", "number")


class SweepPane(Pane):
    KEY = "k"
    TITLE = "Sweep"
    ABOUT = "tune: a study's trials and curves; promote the best"
    BINDINGS: ClassVar[list] = bindings("sweep")  # (tui/bindings.toml)

    def __init__(self, doc: SessionDocument, **kwargs: Any) -> None:
        super().__init__(doc, **kwargs)
        self.studies: list[SweepInfo] = []  # the session's, newest first
        self.study: str | None = None  # the study shown (None: the newest)
        self.state: StudyState | None = None
        self.plot = PLOTS[0]
        self.field = 0  # which searched field the scatter plot shows
        self.sort = SORTS[0]
        self.reads = 0  # reads shown so far (tests wait on it)
        self.launched: dict[str, subprocess.Popen] = {}  # study -> the sweep started here
        self._readers: dict[Path, StudyReader] = {}
        self._lock = threading.Lock()  # (one read at a time: readers keep file offsets)
        self._refresh: Timer | None = None  # reads again while the pane shows

    def compose(self) -> ComposeResult:
        # (plain text: study names, reasons and errors come from files, and "[sweep]" is text)
        yield Static("", id="sweep-head", markup=False)
        yield SweepTable(id="sweep-table")
        yield Static("", id="sweep-status", markup=False)
        yield MetricPlot(PLOT_TITLES["curves"], id="sweep-plot")
        yield ImportanceBars(id="sweep-importances")

    async def widgets_mounted(self) -> None:
        self.query_one("#sweep-importances").display = False
        # (ticking only while the pane shows: shown() resumes it, on_hide pauses it)
        self._refresh = self.set_interval(REFRESH_EVERY, self._tick, name="sweep-refresh",
                                          pause=not self.display)

    @property
    def table(self) -> SweepTable:
        return self.query_one(SweepTable)

    async def shown(self) -> None:
        if self._refresh is not None:
            self._refresh.resume()
        self.read()

    def on_hide(self) -> None:
        if self._refresh is not None:
            self._refresh.pause()

    def show_session(self, doc: SessionDocument, force: bool = False) -> None:
        if self.built and self.display:
            self.read()

    # ------------------------------------------------------------------ reading

    def _tick(self) -> None:
        """Read again while the pane shows: the trials that run, and a study started
        meanwhile elsewhere (a shell, another machine) appears. Cheap: only what was added
        since the last read is read."""
        if self.display:
            self.read()

    def read(self) -> None:
        runs_root = self.session.resolve(self.session.train.runs_dir)
        self._read(runs_root, self.session.name, self.study)

    @work(thread=True, exclusive=True, group="sweep-read", exit_on_error=False)
    def _read(self, runs_root: Path, session: str, wanted: str | None) -> None:
        worker = get_current_worker()
        with self._lock:
            studies = [s for s in list_sweeps(runs_root) if s.session == session]
            info = next((s for s in studies if s.study == wanted), None) if wanted else \
                (studies[0] if studies else None)
            state = None
            if info is not None:
                reader = self._readers.get(info.folder)
                if reader is None:
                    reader = self._readers[info.folder] = StudyReader(info)
                state = reader.read(lambda: worker.is_cancelled)
        if not worker.is_cancelled:
            self.app.call_from_thread(self._show, studies, state)

    def _show(self, studies: list[SweepInfo], state: StudyState | None) -> None:
        self.studies, self.state = studies, state
        self.reads += 1
        self.redraw()

    # ------------------------------------------------------------------ drawing

    def trials(self) -> list[TrialView]:
        """The study's trials in the table's order: by the metric (best first, trials
        without a value after, running ones first among them), or by number."""
        trials = list(self.state.trials) if self.state else []
        if self.sort == "number":
            return sorted(trials, key=lambda t: t.number)
        return sorted(trials, key=lambda t: (t.best is None, t.best if t.best is not None
                                             else 0.0, t.state != RUNNING, t.number))

    def redraw(self) -> None:
        if not self.built:
            return
        state = self.state
        best = state.best() if state else None
        self.query_one("#sweep-head", Static).update(self._head(state, best))
        table = self.table
        table.display = bool(state and state.trials)
        if state is not None:
            table.show_trials(self.trials(), state.space, best.number if best else None)
        self._draw_plot()
        self.query_one("#sweep-status", Static).update(self._status())

    def _head(self, state: StudyState | None, best: TrialView | None) -> str:
        if state is None:
            starting = [s for s, p in self.launched.items() if p.poll() is None]
            if starting:
                return f"study {starting[0]}: starting ..."
            ended = self._launch_failure()
            if ended:
                return ended
            return (f"no sweep of {self.session.name} yet: {self._key('sweep.start')} starts one "
                    "(the saved session's [sweep]; llmlab sweep SESSION does the same in a shell)")
        if state.error:
            return one_line(state.error)
        counts = {s: sum(1 for t in state.trials if t.state == s)
                  for s in (COMPLETE, RUNNING, PRUNED, FAILED)}
        which = f" ({self.studies.index(self._info()) + 1}/{len(self.studies)})" \
            if len(self.studies) > 1 and self._info() in self.studies else ""
        text = (f"study {state.study}{which}: {len(state.trials)} trials, "
                f"{counts[COMPLETE]} complete, {counts[RUNNING]} running, "
                f"{counts[PRUNED]} pruned, {counts[FAILED]} failed")
        if best is not None and best.best is not None:
            text += f"; best #{best.number} {best.best:.4f}"
        return one_line(text)

    def _launch_failure(self) -> str:
        """A sweep started here that ended before its study was made: its log's last line."""
        from core.launch import SWEEP_LOG, log_tail

        for study, process in self.launched.items():
            if process.poll() not in (None, 0, 130):
                line = log_tail(sweep_folder(self.session, study) / SWEEP_LOG)
                return one_line(f"study {study} did not start: {line or 'see its sweep.log'}")
        return ""

    def _status(self) -> str:
        key = self._key
        note = ""
        if self.plot == "importances" and self.state is not None:
            note = self.state.importance_note
        elif self.plot == "scatter":
            note = f"field {self._field() or '-'} ({key('sweep.field')}: next)"
        return one_line(f"{self.plot} ({key('sweep.plot')}: next plot) · sort {self.sort} "
                        f"({key('sweep.sort')}) · {note}".rstrip(" ·"))

    def _field(self) -> str | None:
        space = self.state.space if self.state else []
        return space[self.field % len(space)] if space else None

    def _draw_plot(self) -> None:
        plot = self.query_one("#sweep-plot", MetricPlot)
        bars = self.query_one("#sweep-importances", ImportanceBars)
        plot.display = self.plot != "importances"
        bars.display = self.plot == "importances"
        state = self.state
        if self.plot == "importances":
            bars.show(state.importances if state else {},
                      state.importance_note if state else "no study")
            return
        plot.show(self.plot_data())

    def plot_data(self) -> PlotData:
        """What the plot shows now (one series per trial for the curves)."""
        state = self.state
        if state is None:
            return PlotData()
        best = state.best()
        if self.plot == "curves":
            series = []
            for t in sorted(state.trials, key=lambda t: t.number):
                curve = state.curves.get(t.number)
                if curve is None or not curve.steps:
                    continue
                color = ("plot-val" if best is not None and t.number == best.number else
                         "plot-marker" if t.state in (PRUNED, FAILED) else "plot-train")
                series.append(Series(f"#{t.number}", list(curve.steps), list(curve.losses),
                                     color, marker="dot" if color == "plot-marker" else
                                     "braille"))
            return PlotData(series, title=PLOT_TITLES["curves"])
        if self.plot == "best":
            done = [(t.number, t.best) for t in state.trials
                    if t.state == COMPLETE and t.best is not None]
            series = [Series("trials", [n for n, _ in done], [v for _, v in done], "plot-train",
                             marker="dot", scatter=True)]
            if state.best_so_far:
                series.append(Series("best so far", [n for n, _ in state.best_so_far],
                                     [v for _, v in state.best_so_far], "plot-val"))
            return PlotData(series, title=PLOT_TITLES["best"])
        name = self._field()
        points = [(_number(t.params.get(name)), t.best) for t in state.trials
                  if t.state == COMPLETE and t.best is not None and name in t.params]
        points = [(x, y) for x, y in points if x is not None]
        entry = (self._info().extra.get("space") or {}).get(name, {}) if self._info() else {}
        return PlotData([Series(name or "", [x for x, _ in points], [y for _, y in points],
                                "plot-acc", marker="dot", scatter=True)],
                        log_x=bool(isinstance(entry, dict) and entry.get("log")),
                        title=PLOT_TITLES["scatter"].format(field=name or "-"))

    def _info(self) -> SweepInfo | None:
        if self.state is None:
            return None
        return next((s for s in self.studies if s.study == self.state.study), None)

    # ------------------------------------------------------------------ keys

    def action_cycle_plot(self) -> None:
        self.plot = PLOTS[(PLOTS.index(self.plot) + 1) % len(PLOTS)]
        self.redraw()

    def action_cycle_field(self) -> None:
        self.field += 1
        if self.plot != "scatter":
            self.plot = "scatter"
        self.redraw()

    def action_cycle_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.redraw()

    def action_next_study(self) -> None:
        if len(self.studies) < 2:
            self.notify("no other study of this session", timeout=3)
            return
        names = [s.study for s in self.studies]
        current = self.state.study if self.state else names[0]
        self.study = names[(names.index(current) + 1) % len(names)] \
            if current in names else names[0]
        self.read()

    def action_refresh(self) -> None:
        self.read()

    def _saved_session(self) -> Path | None:
        """The session file a sweep job reads: it must be saved, and be the user's own."""
        doc = self.doc
        if doc.path is None or doc.shipped or doc.dirty:
            self.notify(f"save the session first ({self._key('app.save')}): a sweep runs the "
                        "saved file", severity="warning")
            return None
        if not self.session.sweep.space:
            self.notify("sweep.space: nothing to search; add fields under [sweep.space] of "
                        "the session", severity="warning")
            return None
        return doc.path

    def action_start_sweep(self) -> None:
        from core.launch import launch_sweep
        from core.sweep import new_study_name

        path = self._saved_session()
        if path is None:
            return
        name = new_study_name(self.session)
        folder = sweep_folder(self.session, name)
        try:
            self.launched[name] = launch_sweep(path, name, folder)
        except LlmlabError as e:
            self.notify(str(e), severity="error")
            return
        self.study = name
        self.notify(f"study {name} started (its log: {folder / 'sweep.log'})", timeout=5)
        self.read()

    def action_resume_sweep(self) -> None:
        from core.launch import launch_sweep

        info = self._info()
        if info is None:
            self.notify("no study to resume", severity="warning")
            return
        if self._sweep_pids(info.study):
            self.notify(f"study {info.study} runs already", severity="warning")
            return
        path = self._saved_session()
        if path is None:
            return
        try:
            self.launched[info.study] = launch_sweep(path, info.study, info.folder,
                                                     resume=True)
        except LlmlabError as e:
            self.notify(str(e), severity="error")
            return
        self.notify(f"resuming study {info.study}", timeout=4)
        self.read()

    def _sweep_pids(self, study: str) -> set[int]:
        """The processes on this machine that run `study`: the one started here, and those
        its running trials name (a sweep started in a shell)."""
        pids = {p.pid for s, p in self.launched.items() if s == study and p.poll() is None}
        if self.state is not None and self.state.study == study:
            for worker in self.state.workers:
                host, pid = worker.split(":")[:2] if worker.count(":") >= 2 else ("", "")
                if host == socket.gethostname() and worker_alive(worker):
                    pids.add(int(pid))
        return pids

    def action_stop_sweep(self) -> None:
        """Stop the study shown wherever it runs: its processes on this machine at once, as
        Ctrl+C stops them (SIGINT), and every process of it, here or on another machine
        sharing its storage, through a stop asked in the study (each looks every few
        seconds)."""
        study = self.state.study if self.state else None
        info = next((s for s in self.studies if s.study == study), None)
        pids = self._sweep_pids(study) if study else set()
        if info is None or not (pids or self.state.workers):
            self.notify("no sweep of this study is running", severity="warning")
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGINT)  # (as Ctrl+C: running trials stopped, resumable)
            except OSError:
                pass
        self._ask_to_stop(info)

    @work(thread=True, group="sweep-stop", exit_on_error=False)
    def _ask_to_stop(self, info: SweepInfo) -> None:
        try:
            request_stop(info, worker_id())
        except LlmlabError as e:
            self.app.call_from_thread(self.notify, one_line(str(e)), severity="error")
            return
        self.app.call_from_thread(
            self.notify, f"stopping study {info.study} wherever it runs: its running trials "
                         f"save and stop; {self._key('sweep.resume')} resumes it", timeout=6)

    def action_open_trial(self) -> None:
        trial = self.table.cursor_trial() if self.table.display else None
        if trial is None:
            return
        if not trial.run_dir or not Path(trial.run_dir).is_dir():
            self.notify(f"trial {trial.number} has no run folder"
                        + (f" ({trial.reason})" if trial.reason else ""), severity="warning")
            return
        if trial.state == RUNNING:
            self.post_message(ResumeRunRequest(trial.run_dir))  # (a job trains it: follow it)
        else:
            self.post_message(LoadModelRequest(trial.run_dir))
            self.notify(f"loading trial {trial.number} for Prune and Generate", timeout=4)

    def action_promote(self) -> None:
        best = self.state.best() if self.state else None
        if best is None:
            self.notify("no complete trial to promote", severity="warning")
            return
        for name, value in best.params.items():
            # (not final: a session edit only; a run that trains keeps its own values)
            self.post_message(SessionEdited(name, value, final=False))
        values = ", ".join(f"{k} = {param_text(v)}" for k, v in best.params.items())
        self.notify(f"trial {best.number} promoted: {values} ({self._key('app.save')} "
                    "saves)", timeout=8)

    # ------------------------------------------------------------------ palette

    def palette_commands(self) -> list[PaletteCommand]:
        return [PaletteCommand(f"Sweep: {title}", about,
                               self._in_pane(getattr(self, f"action_{action}")))
                for action, title, about in palette_entries("sweep")]

    def _in_pane(self, action: Callable[[], Any]) -> Callable[[], Any]:
        async def run() -> None:
            await self.build()
            if not self.display:
                self.post_message(Pane.Show(self.pane_name()))
            action()

        return run


def _number(value: Any) -> float | None:
    """A sampled value as a plot's x (a choice that is no number: None)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
