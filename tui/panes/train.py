"""The Train pane: progress, live hyperparameters, plots of the run, and its log.

Engine events arrive here as `tui.messages.Engine*` messages (posted by the engine bridge) and
go into a `TrainHistory`; the plots are redrawn from it at most `REDRAW_HZ` times a second, and
only when something changed and the pane is visible, so a fast run never floods the screen (a
change arms a one-shot timer: nothing wakes the app while nothing changes). The keys call app
actions: the app owns the engine bridge.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.timer import Timer
from textual.worker import get_current_worker

from core import messages as msg
from core.follow import Attached
from core.session import Session
from core.values import EngineState
from tui.commands import PaletteCommand
from tui.document import SessionDocument
from tui.history import TrainHistory
from tui.keymap import bind
from tui.nudge import format_number
from tui.panes.base import Pane
from tui.saved_run import SavedRun, history_from_records, newest_saved_run
from tui.smoothing import SMOOTHING_WEIGHT, debiased_ema
from tui.widgets.eval_report import EvalReportView
from tui.widgets.event_log import EventLog
from tui.widgets.hparam_line import HparamLine
from tui.widgets.metric_plot import MetricPlot, PlotData, Series
from tui.widgets.progress_line import ProgressLine

REDRAW_HZ = 4
ATTACH_LOG_LINES = 40  # the latest log lines of a run shown when the pane attaches to it
# What a key pressed while the training waits is taken after (core.engine polls between these).
WAIT_PARTS = {"pruning sweep": "the sweep level in progress",
              "fine-tuning": "the fine-tuning step in progress",
              "generating": "the token in progress"}


class TrainPane(Pane):
    KEY = "t"
    TITLE = "Train"
    ABOUT = "progress, plots and log of the run"
    ENGINE_EVENTS = (msg.Status, msg.RunStarted, msg.StepMetrics, msg.EvalMetrics,
                     msg.Evaluated, msg.EvalSample, msg.CheckpointSaved, msg.HparamChanged,
                     msg.SparsityChanged, msg.TrainingWaits, msg.Warning, msg.Error)
    LAZY = False  # it follows every step of a run, shown or not
    BINDINGS = [
        bind("train.lr_down", "app.scale_lr(0.5)", "lr ÷2",
             help="Halve the learning rate of the running training, now"),
        bind("train.lr_up", "app.scale_lr(2.0)", "lr ×2",
             help="Double the learning rate of the running training, now"),
        bind("train.edit", "app.edit_hparam", "Edit",
             help="Edit a live hyperparameter: lr, weight decay, grad clip, eval interval"),
        bind("train.smoothing", "toggle_smoothing", "Smooth", show=False,
             help="Plots: smoothing of the train loss (debiased EMA) on/off"),
        bind("train.log_scale", "toggle_log_scale", "Log", show=False,
             help="Plots: logarithmic loss and lr axes on/off"),
        bind("train.side_plot", "toggle_side_plot", "lr/grad", show=False,
             help="Plots: the learning rate or the gradient norm (before clipping)"),
        bind("train.evaluate", "app.evaluate('val')", "Eval",
             help="Evaluate the model (the training one, else the loaded or newest run) on "
                  "the whole val split: loss, perplexity, bits/char, top-1/5, macro-F1"),
        bind("train.evaluate_test", "app.evaluate('test')", "Eval test", show=False,
             help="The same evaluation on the test split"),
    ]

    def __init__(self, doc: SessionDocument, **kwargs: Any) -> None:
        super().__init__(doc, **kwargs)
        self.history = TrainHistory()
        self.smoothing = True
        self.log_scale = False
        self.side_plot = "lr"  # the lower side plot: "lr" or "grad_norm"
        self.state = EngineState.IDLE
        self._evaluate_request = 0  # the Evaluate whose report the pane waits for
        self.waiting_for = ""  # the workbench work the training waits for, if any
        self._dirty = False
        self._drawn_at = 0.0  # time.monotonic() of the last redraw of the plots
        self._redraw_timer: Timer | None = None  # armed by a change, at most one
        self.saved_run: str | None = None  # the run folder shown, read back (no run went here)

    def compose(self) -> ComposeResult:
        yield ProgressLine(id="progress-line")
        yield HparamLine(id="hparam-line")
        with Horizontal(id="plots"):
            yield MetricPlot("loss (train, val)", id="plot-loss")
            with Vertical(id="plots-side"):
                yield MetricPlot("val top-1 accuracy", id="plot-acc")
                yield MetricPlot("learning rate", id="plot-lr")
        yield EvalReportView(id="eval-report")
        yield EventLog(id="event-log")

    def on_mount(self) -> None:
        self._sync_toggles()
        self.redraw()

    def greet(self) -> None:
        """The first lines of the log, naming the keys as the user's keymap has them."""
        self._sync_toggles()
        start, up, down, edit = (self._key(f"train.{name}")
                                 for name in ("start", "lr_up", "lr_down", "edit"))
        self.event_log.add(f"{start} starts a run of this session; while it runs, {up} and "
                           f"{down} double or halve the learning rate and {edit} edits any "
                           "live hyperparameter.")

    @property
    def event_log(self) -> EventLog:
        return self.query_one(EventLog)

    # ------------------------------------------------------------------ hparams shown

    def show_hparams(self, hparams: dict[str, float]) -> None:
        self.query_one(HparamLine).hparams = dict(hparams)

    # ------------------------------------------------------------------ a reopened session

    class SavedRunRead(Message):
        """The session's newest run, read back off the UI thread (None: it has none)."""

        def __init__(self, saved: SavedRun | None) -> None:
            super().__init__()
            self.saved = saved

    def show_newest_run(self, session: Session) -> None:
        """Show the curves of the session's newest run (a session opened, the app started):
        read in a thread worker, shown unless a run goes here by then."""
        self._read_newest_run(copy.deepcopy(session))

    @work(thread=True, exclusive=True, group="saved-run")
    def _read_newest_run(self, session: Session) -> None:
        saved = newest_saved_run(session)
        if not get_current_worker().is_cancelled:
            self.post_message(self.SavedRunRead(saved))

    def on_train_pane_saved_run_read(self, message: SavedRunRead) -> None:
        message.stop()
        if self.state.busy:
            return  # the run going here is what the pane shows
        saved = message.saved
        self.saved_run = saved.run_dir if saved else None
        self.history = saved.history if saved else type(self.history)()
        if saved is not None:
            self.event_log.add(f"the newest run of this session: {saved.run_dir} "
                               f"({saved.status or 'no status'}, step {saved.last_step}); "
                               f"{self._key('train.start')} starts a new one")
        self._changed()

    class Waits(Message):
        """The training stands still for workbench work (or goes on): the app's title says
        so (state up, as a message: the pane does not reach into the app's widgets)."""

        def __init__(self, waiting: bool) -> None:
            super().__init__()
            self.waiting = waiting

    # ------------------------------------------------------------------ a job attached

    class RunAttached(Message):
        """The run a job trains, as it was when the app attached to it."""

        def __init__(self, history: TrainHistory, last: msg.StepMetrics | None,
                     hparams: dict[str, float], logged: list[msg.Event]) -> None:
            super().__init__()
            self.history = history
            self.last = last
            self.hparams = hparams
            self.logged = logged  # the run's latest log-worthy events, oldest first

    def show_attached(self, attached: Attached) -> None:
        """Show the run so far (its RunStarted is on its way here first: the history is
        posted after it, and the events read later come after both)."""
        from core.follow import record_event

        history = history_from_records(attached.records, attached.info)
        history.run_dir = str(attached.run_dir)
        last = next((e for r in reversed(attached.records) if r.get("type") == "train"
                     and isinstance(e := record_event(r, attached.info), msg.StepMetrics)),
                    None)
        hparams = attached.info.get("hparams")
        logged: list[msg.Event] = []  # (the latest ones only: a long run has thousands)
        for r in reversed(attached.records):
            if len(logged) == ATTACH_LOG_LINES:
                break
            if r.get("type") != "train" and (e := record_event(r, attached.info)) is not None:
                logged.append(e)
        logged.reverse()
        self.post_message(self.RunAttached(history, last,
                                           hparams if isinstance(hparams, dict) else {},
                                           logged))

    def on_train_pane_run_attached(self, message: RunAttached) -> None:
        message.stop()
        self.history = message.history
        self.history.last_step = message.last
        if message.last is not None:
            self.query_one(ProgressLine).metrics = message.last
            self.query_one(HparamLine).current_lr = message.last.lr
        if message.hparams:
            self.show_hparams(message.hparams)
        self.event_log.add(f"following {message.history.run_dir}: the job's steps show as it "
                           "logs them")
        for event in message.logged:
            self._log(event)
        self._changed()

    # ------------------------------------------------------------------ engine events

    def engine_event(self, event: msg.Event) -> None:
        match event:
            case msg.Status():
                self._status(event)
            case msg.RunStarted():
                self._run_started(event)
            case msg.StepMetrics():
                self._step(event)
            case msg.EvalMetrics():
                self._evaluated_periodic(event)
            case msg.Evaluated():
                self._report(event)
            case msg.EvalSample() | msg.CheckpointSaved() | msg.SparsityChanged() | msg.Warning():
                self._log(event)
            case msg.HparamChanged():
                self._hparam(event)
            case msg.TrainingWaits():
                self._waits(event)
            case msg.Error():
                self.event_log.add(event.message, "error")
                if event.request_id and event.request_id == self._evaluate_request:
                    self.query_one(EvalReportView).failed()

    def _log(self, event: msg.Event) -> None:
        """The log line of an event that changes nothing but the log (and of the events a
        run had logged before the pane attached to it)."""
        match event:
            case msg.EvalSample():
                self.event_log.add(f"step {event.step} sample: {event.line()}")
            case msg.CheckpointSaved():
                best = " (best so far)" if event.best else ""
                self.event_log.add(f"step {event.step}: checkpoint saved{best}")
            case msg.SparsityChanged():
                self.event_log.add(f"step {event.step}: pruned to {event.sparsity:.1%} "
                                   f"(schedule {event.target:.1%})")
            case msg.Warning():
                self.event_log.add(event.message, "warning")
            case msg.EvalMetrics():
                self.event_log.add(f"step {event.step}: {event.split} loss {event.loss:.4f}, "
                                   f"ppl {event.perplexity:.2f}, top-1 {event.top1:.1%}, "
                                   f"top-5 {event.top5:.1%}")
            case msg.HparamChanged():
                old, new = format_number(event.old), format_number(event.new)
                self.event_log.add(f"step {event.step}: {event.name} {old} → {new}")

    def _status(self, event: msg.Status) -> None:
        self.state = event.state
        self.query_one(ProgressLine).state = self.state
        if not self.state.training:  # (no training to wait)
            self.query_one(ProgressLine).waiting = self.waiting_for = ""
            self.post_message(self.Waits(False))
        detail = f" ({event.detail})" if event.detail else ""
        self.event_log.add(f"{self.state}{detail}")

    def _run_started(self, e: msg.RunStarted) -> None:
        self.history.started(e)
        self.saved_run = None
        progress = self.query_one(ProgressLine)
        progress.metrics = None
        progress.max_steps = e.max_steps
        self.event_log.add(f"run {e.run_dir}")
        scale = f", {e.processes()}" if e.processes() else ""
        self.event_log.add(f"{e.arch}, {e.params:,} params, vocab {e.vocab_size}, on {e.device} "
                           f"({e.precision}){scale}"
                           + (f", from step {e.start_step}" if e.start_step else ""))
        self._changed()

    def _step(self, e: msg.StepMetrics) -> None:
        self.history.step(e)
        self.query_one(ProgressLine).metrics = e
        self.query_one(HparamLine).current_lr = e.lr
        self._changed()

    def _evaluated_periodic(self, e: msg.EvalMetrics) -> None:
        self.history.evaluated(e)
        self._log(e)
        self._changed()

    def evaluating(self, split: str, request_id: int) -> None:
        """An Evaluate was sent: say so at once (the answer may take a while)."""
        self._evaluate_request = request_id
        self.query_one(EvalReportView).evaluating(split)
        self.event_log.add(f"evaluating the {split} split …")

    def _report(self, e: msg.Evaluated) -> None:
        self.query_one(EvalReportView).show_report(e)
        figures = ", ".join(f"{name} {value}" for name, value, _ in e.rows)
        self.event_log.add(f"evaluated {e.scope}: {figures}")

    def _hparam(self, e: msg.HparamChanged) -> None:
        self.history.hparam(e)
        line = self.query_one(HparamLine)
        line.hparams = {**line.hparams, e.name: e.new}
        self._log(e)
        self._changed()

    def _waits(self, e: msg.TrainingWaits) -> None:
        """The engine does workbench work (a sweep ...) and the training stands still: say
        so on the progress line (no ETA meanwhile), once in the log, and in the title."""
        what = f"{e.what} ({e.done}/{e.total})" if e.total else e.what
        progress = self.query_one(ProgressLine)
        if what and not progress.waiting:
            self.event_log.add(f"training waits: {e.what}", "warning")
        elif not what and progress.waiting:
            self.event_log.add("training goes on")
        progress.waiting = what
        self.waiting_for = e.what
        self.post_message(self.Waits(bool(what)))

    def acknowledge(self, key_action: str) -> None:
        """A pause, resume or stop asked while the training waits for workbench work: say at
        once when it is taken (the engine takes it between a sweep's levels, a fine-tuning's
        steps, a generation's tokens; after a quick piece of work as a whole)."""
        if not self.waiting_for:
            return
        after = WAIT_PARTS.get(self.waiting_for, self.waiting_for)
        self.app.notify(f"{key_action} queued: after {after}", timeout=6)

    # ------------------------------------------------------------------ plots

    def _changed(self) -> None:
        self._dirty = True
        if self._redraw_timer is None:
            wait = self._drawn_at + 1 / REDRAW_HZ - time.monotonic()
            self._redraw_timer = self.set_timer(max(wait, 0.01), self._redraw_due,
                                                name="plot-redraw")

    def _redraw_due(self) -> None:
        self._redraw_timer = None
        self._redraw_if_needed()

    def _redraw_if_needed(self) -> None:
        if self._dirty and self.display:
            self.redraw()

    def plot_data(self) -> dict[str, PlotData]:
        """What each plot shows now (the data a test can read back)."""
        h = self.history
        markers = [float(m.step) for m in h.markers]
        steps, losses = h.train_loss.copy()
        loss_series = []
        if self.smoothing and len(steps) > 1:
            loss_series.append(Series("train", steps, losses, "plot-train", marker="dot"))
            loss_series.append(Series("train (smoothed)", steps,
                                      debiased_ema(losses, SMOOTHING_WEIGHT), "plot-smooth"))
        else:
            loss_series.append(Series("train", steps, losses, "plot-train"))
        loss_series.append(Series("val", *h.val_loss.copy(), "plot-val"))
        return {
            "loss": PlotData(loss_series, markers, log_y=self.log_scale),
            "acc": PlotData([Series("val top-1", *h.val_top1.copy(), "plot-acc")], markers),
            "lr": self._side_plot_data(markers),
        }

    def _side_plot_data(self, markers: list[float]) -> PlotData:
        h = self.history
        if self.side_plot == "grad_norm":
            return PlotData([Series("grad norm", *h.grad_norm.copy(), "plot-lr")], markers,
                            log_y=self.log_scale, title="grad norm (before clipping)")
        return PlotData([Series("lr", *h.lr.copy(), "plot-lr")], markers,
                        log_y=self.log_scale)

    def palette_commands(self) -> list[PaletteCommand]:
        c = PaletteCommand
        return [
            c("Plot: toggle smoothing", "TensorBoard's debiased EMA of the train loss",
              self.action_toggle_smoothing),
            c("Plot: toggle log scale", "logarithmic loss and lr axes",
              self.action_toggle_log_scale),
            c("Plot: learning rate / gradient norm", "what the Train pane's lower side plot "
              "shows", self.action_toggle_side_plot),
        ]

    async def shown(self) -> None:
        self.redraw()

    def redraw(self) -> None:
        self._dirty = False
        self._drawn_at = time.monotonic()
        data = self.plot_data()
        self.query_one("#plot-loss", MetricPlot).show(data["loss"])
        self.query_one("#plot-acc", MetricPlot).show(data["acc"])
        self.query_one("#plot-lr", MetricPlot).show(data["lr"])

    def _sync_toggles(self) -> None:
        line = self.query_one(HparamLine)
        line.keys = (self._key("train.smoothing"), self._key("train.log_scale"))
        line.smoothing = self.smoothing
        line.log_scale = self.log_scale

    def action_toggle_smoothing(self) -> None:
        self.smoothing = not self.smoothing
        self._toggled()

    def action_toggle_log_scale(self) -> None:
        self.log_scale = not self.log_scale
        self._toggled()

    def action_toggle_side_plot(self) -> None:
        self.side_plot = "grad_norm" if self.side_plot == "lr" else "lr"
        self._toggled()

    def _toggled(self) -> None:
        """Show the new setting at once; redraw the plots (the costly part) just after, so
        the key's feedback never waits for plotext."""
        self._sync_toggles()
        self._dirty = True
        self.call_after_refresh(self._redraw_if_needed)

