"""The Prune pane: a sparsity slider and a method, a before/after table, a sparsity-vs-loss
curve, and the keys that make the pruned copy the compressed model (apply, fine-tune,
quantize, save).

The engine's workbench does the work; the pane only sends requests (`EngineRequest`) and shows
the answers. The trained weights are never touched: every PruneTo prunes a copy.

Moving the slider fast never queues evaluations: while one PruneTo is in flight the pane only
remembers the newest position wanted, and sends it when the answer arrives, or at once when
another request (fine-tune, int8, write) is made meanwhile: that request is for the copy at
the newest position, so it must reach the engine after it. Every request carries an id that
its answers carry back (`request_id`): the pane knows what each answer is for, drops answers
to requests it no longer waits for (made before another model was loaded, a cancelled
sweep's), and never lets an older result overwrite a newer one on the table.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Select, Static
from textual_slider import Slider

from core import messages as msg
from core.session import field_doc, get_field
from core.values import SWEEP_LEVELS, ModelFigures
from tui.commands import PaletteCommand
from tui.document import SessionDocument
from tui.keymap import bind
from tui.messages import EngineRequest, SessionEdited
from tui.panes.base import Pane
from tui.text import source_name, sparkline
from tui.widgets.metric_plot import MetricPlot, PlotData, Series
from tui.widgets.prune_layers import PruneLayers
from tui.widgets.prune_table import PruneTable

METHODS: tuple[str, ...] = tuple(field_doc("compress.method")["choices"])
MAX_PERCENT = 95
STEP_PERCENT = 5
DEFAULT_FINETUNE_STEPS = 100  # when the session's compress.finetune_steps is 0
LEFT_MIN, LEFT_MAX = 32, 52  # columns of the table's side
_UNSET = object()
ECHOED = ("compress.method", "compress.sparsity")  # fields show_session shows


class PrunePane(Pane):
    KEY = "p"
    TITLE = "Prune"
    ABOUT = "prune, quantize and measure the model"
    WANTS_MODEL = True
    BINDINGS: ClassVar[list] = [
        bind("prune.less", "nudge(-1)", "Sparsity −", show=False,
             help=f"Prune: {STEP_PERCENT}% less sparsity (the slider)"),
        bind("prune.more", "nudge(1)", "Sparsity +", show=False,
             help=f"Prune: {STEP_PERCENT}% more sparsity (the slider)"),
        bind("prune.method", "next_method", "Method", show=False,
             help="Prune: the next pruning method (magnitude, global, random, structured)"),
        bind("prune.apply", "apply", "Apply",
             help="Make the pruned copy the compressed model (the session records it)"),
        bind("prune.finetune", "finetune", "Fine-tune",
             help="Fine-tune the pruned copy for compress.finetune_steps (100 if 0)"),
        bind("prune.quantize", "quantize", "int8",
             help="Quantize the pruned copy (or the dense model) to int8"),
        bind("prune.save", "save", "Write",
             help="Write the compressed model to the run's compressed/ folder"),
        bind("prune.layers", "toggle_layers", "Layers",
             help="Per-layer sparsity instead of the curve (on/off)"),
        bind("prune.sweep", "sweep", "Sweep",
             help="Measure loss against sparsity again (the curve)"),
        bind("prune.cancel", "cancel", "Cancel", show=False,
             help="Stop the sweep or the fine-tuning under way"),
    ]
    ENGINE_EVENTS = (msg.ModelLoaded, msg.Compressed, msg.SweepPointMeasured, msg.FinetuneStep,
                     msg.CompressedSaved, msg.Error)

    def __init__(self, doc: SessionDocument, **kwargs: Any) -> None:
        super().__init__(doc, **kwargs)
        self.method = METHODS[0]
        self.percent = 0  # the slider's sparsity, in percent
        # The loaded model and what was measured of it.
        self.source: str | None = None
        self.step = 0
        self.dense: ModelFigures | None = None
        self.candidate: ModelFigures | None = None
        self.int8: ModelFigures | None = None
        # What the candidate is: (method, sparsity %, fine-tuning steps), as apply records it.
        self.candidate_of: tuple[str, int, int] | None = None
        self.sweep_points: dict[float, float] = {}  # sparsity % -> loss, of self.method
        # Requests under way, by request id: (kind, what), kind "prune" (what: the (method,
        # percent) asked), "finetune" (steps), "quantize" or "save".
        self._requests: dict[int, tuple[str, Any]] = {}
        self._shown_id = 0  # the request whose answer the table shows: older ones never do
        self._wanted: tuple[str, int] | None = None  # the newest position asked meanwhile
        self._sweep_ids: set[int] = set()  # the sweeps of this method whose points to show
        self._finetune_id = 0
        self.sweeping = False
        self.finetuning = False
        self.finetune_losses: list[float] = []
        self._finetune_at = (0, 0)  # (step, steps)
        self.saving = False
        self.note = ""  # the last thing done, for the status line
        self.saved_path: str | None = None
        self.show_layers = False
        # SessionEdited values this pane posted and the app has not yet shown back.
        self._posted: dict[str, list[Any]] = {}
        self._last_shown: dict[str, Any] = {}
        # For benches and tests: how many Compressed answers arrived (each is shown at once),
        # and the candidate's loss the table shows.
        self.measured = 0
        self.shown_loss: float | None = None
        self.engine_seconds = 0.0  # how long the engine took for the last answer
        self._measure_due = False  # a model was loaded while the pane was hidden
        self.compression = ""  # what was done to the loaded model, if it is a compressed one
        self.quantized = False  # the loaded model is int8: nothing to prune

    def compose(self) -> ComposeResult:
        with Horizontal(id="prune-controls"):
            yield Select([(m, m) for m in METHODS], value=self.method, allow_blank=False,
                         compact=True, id="prune-method")
            yield Slider(0, MAX_PERCENT, step=STEP_PERCENT, value=0, id="prune-slider")
            yield Static("0%", id="prune-percent")
        yield Static("", id="prune-source")
        with Horizontal(id="prune-body"):
            with Vertical(id="prune-left"):
                yield PruneTable(id="prune-table")
                yield Static("", id="prune-keys")
            yield MetricPlot("val loss vs sparsity %", id="prune-curve")
            yield PruneLayers(id="prune-layers")
        yield Static("", id="prune-status")

    def on_mount(self) -> None:
        self._refresh()

    def on_show(self) -> None:
        if self._measure_due and self.source is not None:
            self._measure_loaded()
        self._refresh()

    # ------------------------------------------------------------------ the session

    def _echo(self, path: str, value: Any) -> bool:
        """Whether `value` of `path` is no news: one this pane posted (the app showing it
        back, maybe after the slider moved on), or the value shown last time (another field
        changed)."""
        posted = self._posted.setdefault(path, [])
        last = self._last_shown.get(path, _UNSET)
        self._last_shown[path] = value
        if value in posted:
            del posted[:posted.index(value) + 1]
            return True
        if value == last:
            return True
        posted.clear()
        return False

    def _post_edit(self, path: str, value: Any) -> None:
        """Change a session field (nothing is posted when it has that value already: the app
        would not show it back, and the echo bookkeeping must not wait for it)."""
        posted = self._posted.get(path)
        if posted:  # what the session will hold once the app has what was posted
            if posted[-1] == value:
                return
        else:
            current = get_field(self.session, path)
            if current == value and type(current) is type(value):
                return
        if path in ECHOED:
            self._posted.setdefault(path, []).append(value)
        self.post_message(SessionEdited(path, value, final=True))

    def show_session(self, doc: SessionDocument, force: bool = False) -> None:
        """The session changed (or was opened): show its method and sparsity. Nothing is
        posted back; a model is pruned again only if one is loaded."""
        session = doc.session
        c = session.compress
        method = c.method if c.method in METHODS else self.method
        percent = max(0, min(MAX_PERCENT, round(c.sparsity * 100)))
        new_method = not self._echo("compress.method", c.method) and method != self.method
        new_percent = (not self._echo("compress.sparsity", c.sparsity)
                       and percent != self.percent)
        if not (new_method or new_percent):
            return
        self.method, self.percent = method, percent
        self._show_controls()
        if self.dense is not None:
            if new_method:
                self._method_changed()
            else:
                self._want_prune()
        self._refresh()

    def _show_controls(self) -> None:
        """The select and the slider as the pane's state says (posting nothing)."""
        if not self.is_mounted:
            return
        with self.prevent(Select.Changed, Slider.Changed):
            self.query_one("#prune-method", Select).value = self.method
            self.query_one("#prune-slider", Slider).value = self.percent

    # ------------------------------------------------------------------ the controls

    def on_slider_changed(self, message: Slider.Changed) -> None:
        message.stop()
        self._set_percent(message.value)

    def on_select_changed(self, message: Select.Changed) -> None:
        message.stop()
        if isinstance(message.value, str) and message.value in METHODS:
            self._set_method(message.value)

    def action_nudge(self, direction: int) -> None:
        slider = self.query_one("#prune-slider", Slider)
        slider.value = max(0, min(MAX_PERCENT, slider.value + direction * STEP_PERCENT))

    def action_next_method(self) -> None:
        method = METHODS[(METHODS.index(self.method) + 1) % len(METHODS)]
        self.query_one("#prune-method", Select).value = method  # (-> on_select_changed)

    def _set_percent(self, percent: int) -> None:
        if percent == self.percent:
            return
        self.percent = percent
        self._post_edit("compress.sparsity", percent / 100)
        self._want_prune()
        self._refresh()

    def _set_method(self, method: str) -> None:
        if method == self.method:
            return
        self.method = method
        self._post_edit("compress.method", method)
        if self.dense is not None:
            self._method_changed()
        self._refresh()

    def _method_changed(self) -> None:
        """A new method: the slider's answer first, then the new method's curve."""
        if self.sweeping:  # (the old method's curve)
            self._cancel_sweeps()
        self.sweeping, self.sweep_points = False, {}
        self._want_prune()
        self._run_sweep()

    # ------------------------------------------------------------------ requests

    def _request(self, command: msg.Command) -> None:
        self.post_message(EngineRequest(command))

    def _send(self, kind: str, command: msg.Command, what: Any = None) -> int:
        """Send `command`, its request id remembered as `kind` until answered."""
        if kind != "sweep":
            self._requests[command.request_id] = (kind, what)
        self._request(command)
        return command.request_id

    def _cancel_sweeps(self) -> None:
        """Cancel the sweeps of this pane's (not a fine-tuning queued behind them)."""
        for request_id in self._sweep_ids:
            self._request(msg.Cancel(request_id))

    def _prunes(self) -> list[tuple[str, int]]:
        """The positions of the PruneTo requests in flight, oldest first."""
        return [what for kind, what in self._requests.values() if kind == "prune"]

    def _want_prune(self, now: bool = False) -> None:
        """Prune a copy to the slider's position: when the one in flight answers, or `now`."""
        if self.dense is None or self._refuse_int8():
            return
        wanted = (self.method, self.percent)
        in_flight = self._prunes()
        if in_flight and (not now or wanted == in_flight[-1]):
            self._wanted = None if wanted == in_flight[-1] else wanted
            return
        self._wanted = None
        levels_left = self._interrupt_sweep()
        self._send("prune", msg.PruneTo(wanted[0], wanted[1] / 100), wanted)
        if levels_left:
            self._sweep_ids.add(self._send("sweep", msg.Sweep(self.method, levels_left)))

    def _send_wanted(self) -> None:
        """The position waiting for the PruneTo in flight, asked now: a request made after it
        (fine-tune, int8, write) is for the copy at that position."""
        if self._wanted is not None:
            self._want_prune(now=True)

    def _interrupt_sweep(self) -> tuple[float, ...]:
        """Cancel the sweep under way, so that a slider move is answered within a second and
        not after the whole curve; the levels it has left, to sweep after the move."""
        if not self.sweeping:
            return ()
        self._cancel_sweeps()
        done = set(self.sweep_points)
        return tuple(level for level in SWEEP_LEVELS
                     if round(level * 100, 1) not in done)

    def _refuse_int8(self) -> bool:
        """Say so (True) when the loaded model is int8, which cannot be pruned."""
        if self.quantized:
            self.notify("the loaded model is int8: prune the run it came from (Runs pane), "
                        "then quantize", severity="warning")
        return self.quantized

    def _run_sweep(self) -> None:
        if self._refuse_int8():
            return
        if self.sweeping:
            self._cancel_sweeps()
        self.sweeping = True
        self.sweep_points = {}
        self._sweep_ids = {self._send("sweep", msg.Sweep(self.method))}

    def _no_model(self) -> bool:
        """Say so (True) when no model is loaded."""
        if self.dense is not None:
            return False
        self.notify(self._hint(), severity="warning")
        return True

    def action_apply(self) -> None:
        if self._no_model():
            return
        shown = self.int8 or self.candidate
        if shown is None:
            self.notify(f"nothing to apply yet: move the sparsity up ({self._key('prune.more')})"
                        " to prune a copy", severity="warning")
            return
        if self.candidate is not None and self.candidate_of is not None:
            method, percent, steps = self.candidate_of
            self._post_edit("compress.method", method)
            self._post_edit("compress.sparsity", percent / 100)
            self._post_edit("compress.finetune_steps", steps)
        self._post_edit("compress.quantize", "int8" if self.int8 is not None else "none")
        self.note = f"applied: {shown.label} is the compressed model now"
        self._refresh()

    def action_finetune(self) -> None:
        if self._no_model():
            return
        if self.candidate is None and not self.pruning:
            self.notify(f"nothing to fine-tune: prune a copy first ({self._key('prune.more')})",
                        severity="warning")
            return
        if self.finetuning:
            self.notify("a fine-tuning is under way", severity="warning")
            return
        steps = (self.session.compress.finetune_steps if self.session else 0) \
            or DEFAULT_FINETUNE_STEPS
        self.finetuning = True
        self.finetune_losses = []
        self._finetune_at = (0, steps)
        self._send_wanted()
        self._finetune_id = self._send("finetune", msg.FineTune(steps), steps)
        self._refresh()

    def action_quantize(self) -> None:
        if self._no_model():
            return
        if self.int8 is not None:
            self.notify("already int8: move the slider to prune a fresh copy",
                        severity="warning")
            return
        self._send_wanted()
        self._send("quantize", msg.Quantize())
        self._refresh()

    def action_save(self) -> None:
        if self._no_model():
            return
        if self.candidate is None and self.int8 is None:
            self.notify("nothing to write: prune or quantize the model first",
                        severity="warning")
            return
        self.saving = True
        self._send_wanted()
        self._send("save", msg.SaveCompressed())
        self._refresh()

    def action_toggle_layers(self) -> None:
        self.show_layers = not self.show_layers
        self._refresh()

    def action_sweep(self) -> None:
        if self._no_model():
            return
        self._run_sweep()
        self._refresh()

    def action_cancel(self) -> None:
        if not (self.sweeping or self.finetuning):
            self.notify("nothing to cancel: no sweep or fine-tuning is under way",
                        severity="warning")
            return
        if self.sweeping:
            self._cancel_sweeps()
        if self.finetuning:
            self._request(msg.Cancel(self._finetune_id))
        if self.sweeping:  # (a cancelled sweep says nothing more)
            self.sweeping = False
            self.note = "sweep cancelled"
        if self.finetuning:
            self.note = "stopping the fine-tuning …"
        self._refresh()

    # ------------------------------------------------------------------ engine events

    def _clear_requests(self) -> None:
        """Wait for no answer any more (those that still come are dropped)."""
        self._requests.clear()
        self._sweep_ids.clear()
        self._wanted = None
        self.sweeping = self.finetuning = self.saving = False

    def engine_event(self, event: msg.Event) -> None:
        match event:
            case msg.ModelLoaded():
                self._model_loaded(event)
            case msg.Compressed():
                self._compressed(event)
            case msg.SweepPointMeasured():
                self._sweep_point(event)
            case msg.FinetuneStep():
                self._finetune_step(event)
            case msg.CompressedSaved():
                self._saved(event)
            case msg.Error():
                self._failed(event)

    def _model_loaded(self, e: msg.ModelLoaded) -> None:
        self._clear_requests()
        self.source, self.step, self.dense = e.source, e.step, e.dense
        self.compression, self.quantized = e.compression, e.quantized
        self.candidate = self.int8 = self.candidate_of = None
        self.sweep_points = {}
        self.note = ""
        # A model loaded from elsewhere (the Runs pane, a finished training) is measured when
        # this pane is shown: no engine time for a pane nobody looks at.
        self._measure_due = True
        if self.display:
            self._measure_loaded()
        self._refresh()

    def _measure_loaded(self) -> None:
        """The curve of the loaded model, and the slider's position if it is not 0%."""
        self._measure_due = False
        if self.quantized:  # (an int8 model cannot be pruned: the engine would say so)
            self.note = (f"int8: generate from it ({self._key('app.generate')}); to prune, load "
                         "the run it came from")
            return
        if self.percent > 0:
            self._want_prune()
        self._run_sweep()

    def _compressed(self, e: msg.Compressed) -> None:
        request = self._requests.pop(e.request_id, None)
        if request is None:
            return  # no request of this pane's (one made before this model was loaded)
        kind, what = request
        self.measured += 1
        self.engine_seconds = e.seconds
        figures = e.figures
        newest = e.request_id > self._shown_id  # an older result never overwrites a newer one
        if newest:
            self._shown_id = e.request_id
            self.dense = e.dense
            if figures.label.endswith("int8"):
                self.int8 = figures
                self._post_edit("compress.quantize", "int8")
                self.note = f"quantized: {figures.label}, {e.seconds:.1f} s"
            else:
                self.candidate, self.int8 = figures, None
                self.shown_loss = figures.loss
        if kind == "prune":
            if newest:
                self.candidate_of = (*what, 0)
            if self._wanted is not None and not self._prunes():
                self._want_prune()
        elif kind == "finetune":
            self.finetuning = False
            if newest and self.candidate_of is not None:
                method, percent, steps = self.candidate_of
                self.candidate_of = (method, percent, steps + self._finetune_at[0])
            losses = self.finetune_losses
            start = f"{losses[0]:.3f} → " if losses else ""
            self.note = (f"fine-tuned {self._finetune_at[0]} steps: train loss {start}"
                         f"{losses[-1]:.3f}" if losses else "fine-tuned") + \
                f"; val loss {figures.loss:.3f}"
        self._refresh()

    def _sweep_point(self, e: msg.SweepPointMeasured) -> None:
        if e.request_id not in self._sweep_ids:
            return  # a sweep of the method before, or of the model before
        self.sweep_points[round(e.sparsity * 100, 1)] = e.loss
        if e.last:
            self.sweeping = False
        self._refresh()

    def _finetune_step(self, e: msg.FinetuneStep) -> None:
        if e.request_id != self._finetune_id or not self.finetuning:
            return
        self.finetune_losses.append(e.loss)
        self._finetune_at = (e.step, e.steps)
        self._refresh_status()

    def _saved(self, e: msg.CompressedSaved) -> None:
        if self._requests.pop(e.request_id, None) is None:
            return
        self.saving = False
        self.saved_path = e.path
        self.note = f"written: {source_name(e.path)}"
        self.notify(f"compressed model written to {e.path}", timeout=6)
        self._refresh()

    def _failed(self, e: msg.Error) -> None:
        """The app shows the error; here the failed request is no longer waited for
        (another pane's failure, a Generate or a ScoreText, changes nothing here)."""
        if not e.request_id:
            return  # a training's failure
        if e.request_id in self._sweep_ids:
            self.sweeping = False
            self._sweep_ids.clear()
        elif e.request_id in self._requests:
            kind, _what = self._requests.pop(e.request_id)
            if kind == "prune":
                self._wanted = None  # (the next position would most likely fail the same way)
            self.finetuning &= kind != "finetune"
            self.saving &= kind != "save"
        elif e.request_id == self.model_request:  # the app's LoadRun: nothing is left
            self._clear_requests()
        else:
            return  # another pane's request
        self._refresh()

    # ------------------------------------------------------------------ showing

    def _hint(self) -> str:
        loading = self.model_loading
        if loading:
            return f"loading {source_name(loading)} …"
        how = self.how_to_load(where="the Runs pane")
        return (f"No model loaded. {how[0].upper()}{how[1:]}.\n"
                f"Then {self._key('prune.less')}/{self._key('prune.more')} prune a copy of it "
                "to any sparsity: the trained weights stay as they are.")

    @property
    def pruning(self) -> bool:
        """Whether a PruneTo is in flight."""
        return bool(self._prunes())

    def _measuring(self) -> str:
        in_flight = self._prunes()
        if not in_flight:
            return ""
        method, percent = self._wanted or in_flight[-1]
        return f"{method} {percent}%"

    def status_text(self) -> str:
        parts = []
        if self.finetuning:
            step, steps = self._finetune_at
            loss = f" loss {self.finetune_losses[-1]:.3f} " if self.finetune_losses else " "
            parts.append(f"fine-tuning {step}/{steps}{loss}{sparkline(self.finetune_losses)}"
                         f" ({self._key('prune.cancel')} stops)")
        if self.pruning:
            parts.append(f"measuring {self._measuring()} …")
        if any(kind == "quantize" for kind, _ in self._requests.values()):
            parts.append("quantizing …")
        if self.saving:
            parts.append("writing …")
        if self.sweeping:
            parts.append(f"sweep {len(self.sweep_points)}/{len(SWEEP_LEVELS)} …")
        if not parts and self.note:
            parts.append(self.note)
        return " · ".join(parts)

    def _refresh_status(self) -> None:
        if self.is_mounted:
            self.query_one("#prune-status", Static).update(self.status_text())

    def plot_data(self) -> PlotData:
        """The curve: the sweep's points and the candidate at the slider's position."""
        xs = sorted(self.sweep_points)
        series = [Series("sweep", xs, [self.sweep_points[x] for x in xs], "plot-val")]
        if self.candidate is not None and not self.pruning:
            series.append(Series("candidate", [float(self.percent)], [self.candidate.loss],
                                 "plot-train", marker="dot"))
        return PlotData(series, markers=[float(self.percent)] if self.dense else [])

    def _refresh(self) -> None:
        if not self.is_mounted:
            return
        self.query_one("#prune-percent", Static).update(f"{self.percent:>2}%")
        source = self.query_one("#prune-source", Static)
        if self.source is not None and self.dense is not None:
            done = f" · {self.compression}" if self.compression else ""
            source.update(f"{source_name(self.source)}{done} · step {self.step} · "
                          f"{self.dense.params:,} params")
        else:
            source.update(self._hint())
        source.set_class(self.dense is None, "-hint")
        self.query_one("#prune-body").display = self.dense is not None
        table = self.query_one(PruneTable)
        table.show(self.dense, self.candidate, self.int8, self._measuring())
        # (an auto width would keep the first table's: the side is sized from the table)
        width = max(LEFT_MIN, min(LEFT_MAX, table.wanted_width() + 2))
        left = self.query_one("#prune-left")
        if left.styles.width is None or left.styles.width.value != width:
            left.styles.width = width
        k = self._key
        self.query_one("#prune-keys", Static).update(
            f"{k('prune.less')}/{k('prune.more')} sparsity  {k('prune.method')} method\n"
            f"{k('prune.apply')} apply  {k('prune.finetune')} fine-tune  "
            f"{k('prune.quantize')} int8\n"
            f"{k('prune.save')} write  {k('prune.layers')} layers  {k('prune.sweep')} sweep\n"
            f"{k('prune.cancel')} cancel sweep / fine-tune"
            if self.dense is not None else "")
        curve, layers = self.query_one(MetricPlot), self.query_one(PruneLayers)
        curve.display, layers.display = not self.show_layers, self.show_layers
        if self.show_layers:
            shown = self.candidate or self.dense
            layers.show(f"sparsity by layer: {shown.label}" if shown else "sparsity by layer",
                        shown.layers if shown else [])
        elif self.display:
            curve.show(self.plot_data())
        self._refresh_status()

    def palette_commands(self) -> list[PaletteCommand]:
        c = PaletteCommand
        return [
            c("Prune: apply", "make the pruned copy the compressed model", self.action_apply),
            c("Prune: fine-tune", "train the pruned copy (pruned weights stay zero)",
              self.action_finetune),
            c("Prune: quantize int8", "int8 weights: a smaller file", self.action_quantize),
            c("Prune: save the compressed model", "to the run's compressed/ folder",
              self.action_save),
            c("Prune: per-layer sparsity", "instead of the curve (on/off)",
              self.action_toggle_layers),
            c("Prune: sweep again", "measure loss against sparsity (the curve)",
              self.action_sweep),
        ]
