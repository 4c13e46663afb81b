"""The Prune pane: a sparsity slider and a method, a before/after table, a sparsity-vs-loss
curve, and the keys that make the pruned copy the compressed model (apply, fine-tune,
quantize, save).

The engine's workbench does the work; the pane only sends requests (`EngineRequest`) and shows
the answers. The trained weights are never touched: every PruneTo prunes a copy.

What the pane asked and waits for (`requests`: moving the slider fast never queues
evaluations, every answer is matched to its request by id) and which session values it is
shown are echoes of its own edits are in tui/prune_requests.py, plain Python.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Select, Static
from textual_slider import Slider

from core import messages as msg
from core.session import field_doc, get_field
from core.values import ModelFigures
from tui.commands import PaletteCommand
from tui.document import SessionDocument
from tui.keymap import bindings, palette_entries
from tui.messages import EngineRequest, SessionEdited
from tui.panes.base import Pane
from tui.prune_requests import Echoes, PruneRequests, keys_text, no_model_hint
from tui.text import source_name
from tui.widgets.metric_plot import MetricPlot, PlotData, Series
from tui.widgets.prune_layers import PruneLayers
from tui.widgets.prune_table import PruneTable

METHODS: tuple[str, ...] = tuple(field_doc("compress.method")["choices"])
MAX_PERCENT = 95
STEP_PERCENT = 5
DEFAULT_FINETUNE_STEPS = 100  # when the session's compress.finetune_steps is 0
LEFT_MIN, LEFT_MAX = 32, 52  # columns of the table's side
ECHOED = ("compress.method", "compress.sparsity")  # fields show_session shows


class PrunePane(Pane):
    KEY = "p"
    TITLE = "Prune"
    ABOUT = "prune, quantize and measure the model"
    WANTS_MODEL = True
    BINDINGS: ClassVar[list] = bindings("prune", step=STEP_PERCENT)  # (tui/bindings.toml)
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
        self.requests = PruneRequests(lambda command: self.post_message(EngineRequest(command)))
        self.note = ""  # the last thing done, for the status line
        self.saved_path: str | None = None
        self.show_layers = False
        self.echoes = Echoes(ECHOED)  # the session edits posted, not yet shown back
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

    async def widgets_mounted(self) -> None:
        self._refresh()

    def on_show(self) -> None:
        if not self.built:
            return
        if self._measure_due and self.source is not None:
            self._measure_loaded()
        self._refresh()

    # ------------------------------------------------------------------ the session

    def _post_edit(self, path: str, value: Any) -> None:
        """Change a session field (nothing is posted when it has that value already: the app
        would not show it back, and the echo bookkeeping must not wait for it)."""
        if self.echoes.to_post(path, value, get_field(self.session, path)):
            self.post_message(SessionEdited(path, value, final=True))

    def show_session(self, doc: SessionDocument, force: bool = False) -> None:
        """The session changed (or was opened): show its method and sparsity. Nothing is
        posted back; a model is pruned again only if one is loaded."""
        session = doc.session
        c = session.compress
        method = c.method if c.method in METHODS else self.method
        percent = max(0, min(MAX_PERCENT, round(c.sparsity * 100)))
        new_method = not self.echoes.is_echo("compress.method", c.method) and \
            method != self.method
        new_percent = not self.echoes.is_echo("compress.sparsity", c.sparsity) and \
            percent != self.percent
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
        if not self.built:
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
        self.requests.forget_sweep()  # (the old method's curve)
        self._want_prune()
        self._run_sweep()

    # ------------------------------------------------------------------ requests

    def _want_prune(self, now: bool = False) -> None:
        """Prune a copy to the slider's position: when the one in flight answers, or `now`."""
        if self.dense is not None and not self._refuse_int8():
            self.requests.prune((self.method, self.percent), now)

    def _refuse_int8(self) -> bool:
        """Say so (True) when the loaded model is int8, which cannot be pruned."""
        if self.quantized:
            self.notify("the loaded model is int8: prune the run it came from (Runs pane), "
                        "then quantize", severity="warning")
        return self.quantized

    def _run_sweep(self) -> None:
        if not self._refuse_int8():
            self.requests.sweep(self.method)

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
        if self.requests.finetuning:
            self.notify("a fine-tuning is under way", severity="warning")
            return
        self.requests.finetune(self.session.compress.finetune_steps or DEFAULT_FINETUNE_STEPS)
        self._refresh()

    def action_quantize(self) -> None:
        if self._no_model():
            return
        if self.int8 is not None:
            self.notify("already int8: move the slider to prune a fresh copy",
                        severity="warning")
            return
        self.requests.quantize()
        self._refresh()

    def action_save(self) -> None:
        if self._no_model():
            return
        if self.candidate is None and self.int8 is None:
            self.notify("nothing to write: prune or quantize the model first",
                        severity="warning")
            return
        self.requests.save()
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
        if not (self.requests.sweeping or self.requests.finetuning):
            self.notify("nothing to cancel: no sweep or fine-tuning is under way",
                        severity="warning")
            return
        self.note = self.requests.cancel()
        self._refresh()

    # ------------------------------------------------------------------ engine events

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
        self.requests.clear()
        self.source, self.step, self.dense = e.source, e.step, e.dense
        self.compression, self.quantized = e.compression, e.quantized
        self.candidate = self.int8 = self.candidate_of = None
        self.requests.sweep_points = {}
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
        answer = self.requests.compressed(e.request_id)
        if answer is None:
            return  # no request of this pane's (one made before this model was loaded)
        self.measured += 1
        self.engine_seconds = e.seconds
        figures = e.figures
        if answer.newest:  # (an older result never overwrites a newer one)
            self.dense = e.dense
            if figures.label.endswith("int8"):
                self.int8 = figures
                self._post_edit("compress.quantize", "int8")
                self.note = f"quantized: {figures.label}, {e.seconds:.1f} s"
            else:
                self.candidate, self.int8 = figures, None
                self.shown_loss = figures.loss
        if answer.kind == "prune" and answer.newest:
            self.candidate_of = (*answer.what, 0)
        elif answer.kind == "finetune":
            if answer.newest and self.candidate_of is not None:
                method, percent, steps = self.candidate_of
                self.candidate_of = (method, percent, steps + self.requests.finetune_at[0])
            self.note = self.requests.finetuned_note(figures.loss)
        self._refresh()

    def _sweep_point(self, e: msg.SweepPointMeasured) -> None:
        if self.requests.sweep_point(e):
            self._refresh()

    def _finetune_step(self, e: msg.FinetuneStep) -> None:
        if self.requests.finetune_step(e):
            self._refresh_status()

    def _saved(self, e: msg.CompressedSaved) -> None:
        if not self.requests.saved(e):
            return
        self.saved_path = e.path
        self.note = f"written: {source_name(e.path)}"
        self.notify(f"compressed model written to {e.path}", timeout=6)
        self._refresh()

    def _failed(self, e: msg.Error) -> None:
        """The app shows the error; here the failed request is no longer waited for."""
        if self.requests.failed(e, self.model_request):
            self._refresh()

    # ------------------------------------------------------------------ showing

    def _hint(self) -> str:
        loading = source_name(self.model_loading) if self.model_loading else None
        return no_model_hint(loading, self.how_to_load(where="the Runs pane"), self._key)

    @property
    def pruning(self) -> bool:
        """Whether a PruneTo is in flight."""
        return self.requests.pruning

    def status_text(self) -> str:
        return self.requests.status_text(self.note, self._key("prune.cancel"))

    def _refresh_status(self) -> None:
        if self.built:
            self.query_one("#prune-status", Static).update(self.status_text())

    def plot_data(self) -> PlotData:
        """The curve: the sweep's points and the candidate at the slider's position."""
        points = self.requests.sweep_points
        xs = sorted(points)
        series = [Series("sweep", xs, [points[x] for x in xs], "plot-val")]
        if self.candidate is not None and not self.pruning:
            series.append(Series("candidate", [float(self.percent)], [self.candidate.loss],
                                 "plot-train", marker="dot"))
        return PlotData(series, markers=[float(self.percent)] if self.dense else [])

    def _refresh(self) -> None:
        if not self.built:
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
        table.show(self.dense, self.candidate, self.int8, self.requests.measuring())
        # (an auto width would keep the first table's: the side is sized from the table)
        width = max(LEFT_MIN, min(LEFT_MAX, table.wanted_width() + 2))
        left = self.query_one("#prune-left")
        if left.styles.width is None or left.styles.width.value != width:
            left.styles.width = width
        self.query_one("#prune-keys", Static).update(
            keys_text(self._key) if self.dense is not None else "")
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
        """The pane's bindings that are palette commands too (tui/bindings.toml)."""
        return [PaletteCommand(f"Prune: {title}", about, getattr(self, f"action_{action}"))
                for action, title, about in palette_entries("prune")]
