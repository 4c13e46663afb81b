"""The Dataset pane: choose a corpus and a tokenizer, see statistics and a token preview.

The corpus is read in a thread worker (core.dataset tokenizes on first use and caches), so a
large corpus never freezes the screen; a bad one shows core's one-line error in the pane.

With a model loaded (a run of the session), h turns the preview into the surprise heatmap:
the engine scores the preview text (`ScoreText`) and each token is coloured by its loss under
the model. The app subscribes the pane to the engine messages named in `ENGINE_EVENTS`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.timer import Timer
from textual.widgets import Input, Label, Select, Static
from textual.worker import get_current_worker

from core import messages as msg
from core.messages import ScoreText
from core.samples import SAMPLE_PREFIX, SAMPLES
from core.session import DataConfig, field_doc
from tui.commands import PaletteCommand
from tui.document import SessionDocument
from tui.keymap import bind, bindings, key_display, keys, palette_entries
from tui.messages import (
    CorpusFailed,
    CorpusLoaded,
    CorpusProgress,
    EngineRequest,
    LoadModelRequest,
    SessionEdited,
)
from tui.panes.base import Pane
from tui.text import fit_words
from tui.widgets.corpus_stats import CorpusStatsView
from tui.widgets.cycle_select import CycleSelect
from tui.widgets.field_row import FieldRow
from tui.widgets.surprise_legend import HeatScale, SurpriseLegend, run_name
from tui.widgets.token_preview import TokenPreview

BROWSE = "browse…"
TYPED_PATH = "path"
PREVIEW_CHARS = 1200
RELOAD_DELAY = 0.4  # seconds of quiet after an edit before the corpus is read again
BOUNDARY_TITLE = "preview: token boundaries in alternating colours · {key}: surprise heatmap"


@dataclass
class CorpusView:
    """What the pane shows of a corpus, computed off the UI thread."""

    data: DataConfig  # the settings it was read with
    stats: Any  # core.stats.CorpusStats
    preview: str
    spans: list[tuple[int, int]]
    cache_hit: bool

    @property
    def vocab_size(self) -> int:
        return int(self.stats.vocab_size)

    @property
    def train_tokens(self) -> int:
        return int(self.stats.split_tokens.get("train", 0))


class _Cancelled(Exception):
    pass


def read_corpus(data: DataConfig, base_dir: Path | None, progress=None) -> CorpusView:
    """Tokenize (or open the cache of) a corpus and compute what the pane shows."""
    from core.dataset import load_dataset
    from core.stats import corpus_stats, token_preview

    ds = load_dataset(data, base_dir, progress=progress)
    stats = corpus_stats(ds, top=12)
    text = ds.corpus.head(PREVIEW_CHARS)
    spans = [(s.start, s.end) for s in token_preview(ds.tokenizer, text)]
    return CorpusView(copy.deepcopy(data), stats, text, spans, ds.cache_hit)


class DatasetPane(Pane):
    KEY = "d"
    TITLE = "Dataset"
    ABOUT = "corpus, tokenizer, statistics, preview"
    ENGINE_EVENTS = (msg.ModelLoaded, msg.TextScored, msg.Error)  # (the heatmap's)
    LAZY = False  # the first screen; it reads the corpus whose vocabulary the app sizes with
    BINDINGS = [
        *bindings("dataset"),  # (tui/bindings.toml)
        bind("pane.leave_field", "leave_field", "Leave field", show=False,
             help="Leave the field being edited (single keys work again)"),
        bind("pane.next_field", "move_field(1)", "", show=False),
        bind("pane.previous_field", "move_field(-1)", "", show=False),
    ]

    def __init__(self, doc: SessionDocument, **kwargs: Any) -> None:
        super().__init__(doc, **kwargs)
        self.view: CorpusView | None = None
        self.error: str | None = None
        self._status: tuple[str, str] | None = None  # (text, kind), shown again on resize
        self.reading = False
        self._loaded_for: tuple[Any, ...] | None = None
        self._reload_timer: Timer | None = None
        # the surprise heatmap
        self.heatmap = False  # the user asked for it (h); it shows once the text is scored
        self.scored: Any = None  # core.messages.TextScored of the shown text, or None
        self.heat_error: str | None = None
        self._pending: int | None = None  # the ScoreText waiting for its answer
        self._pending_key: tuple[str, str] | None = None  # (text, model) it scores
        self._scored_key: tuple[str, str] | None = None
        self._awaiting_model = False  # a LoadModelRequest of ours not yet answered
        self._model_steps: dict[str, int] = {}  # model source -> its training step

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        data = self.session.data
        options = [(f"{SAMPLE_PREFIX}{name}", f"{SAMPLE_PREFIX}{name}") for name in SAMPLES]
        options += [("typed path", TYPED_PATH), (BROWSE, BROWSE)]
        is_sample = data.corpus.startswith(SAMPLE_PREFIX) and data.corpus in dict(options)
        with Horizontal(id="corpus-line"):
            yield Label("corpus", classes="field-label")
            # (+/- step through the shipped samples; the typed path and browse… are in the
            # list, which enter opens)
            yield CycleSelect(options, value=data.corpus if is_sample else TYPED_PATH,
                              cycle=[value for _, value in options[:len(SAMPLES)]],
                              allow_blank=False, compact=True, id="corpus-source")
            yield Input("" if is_sample else data.corpus, compact=True, id="corpus-path",
                        placeholder="a file or folder; enter to use it")
        with Horizontal(id="tokenizer-line"):
            for name in ("tokenizer", "vocab_size", "encoding_errors"):
                path = f"data.{name}"
                kind = {"vocab_size": int}.get(name, str)
                # vocab_size is a cap (0: none), not the vocabulary: it reads "cap  no cap",
                # and the real size follows once the corpus is read
                yield FieldRow(path, kind, field_doc(path), getattr(data, name),
                               label={"vocab_size": "cap", "encoding_errors": "utf-8"}.get(
                                   name, name), id_prefix="dataset", problem_text=False,
                               zero_text="no cap" if name == "vocab_size" else None)
            yield Static("", id="vocab-in-use", markup=False)
        yield Static("", id="corpus-status")
        yield CorpusStatsView(id="corpus-stats")
        yield Label(BOUNDARY_TITLE.format(key=keys("dataset.heatmap")), id="preview-title")
        legend = SurpriseLegend(id="surprise-legend")
        legend.display = False
        yield legend
        yield TokenPreview(id="token-preview")

    def on_mount(self) -> None:
        # The corpus is read once the first frame is on screen (the app calls `reload`).
        self._show_reading()
        self.call_after_refresh(self._show_heat_key)  # (once the app applied the keymap)

    def _show_reading(self) -> None:
        self._show_status(f"reading {self.session.data.corpus} …", "muted")

    def _show_heat_key(self) -> None:
        """Name the heatmap's key as the user's keymap has it (the app applies that keymap in
        its on_mount)."""
        shown = key_display(self.app, "dataset.heatmap")
        self.query_one("#preview-title", Label).update(BOUNDARY_TITLE.format(key=shown))
        self.query_one(SurpriseLegend).key = shown

    # ------------------------------------------------------------------ session in

    def show_session(self, doc: SessionDocument, force: bool = False) -> None:
        """The app's session changed (an edit here or elsewhere, or another file opened)."""
        session, problems = doc.session, doc.problems
        data = session.data
        source = self.query_one("#corpus-source", Select)
        path_input = self.query_one("#corpus-path", Input)
        if data.corpus.startswith(SAMPLE_PREFIX) and data.corpus != source.value:
            with source.prevent(Select.Changed):
                source.value = data.corpus
            with path_input.prevent(Input.Changed):
                path_input.value = ""
        elif not data.corpus.startswith(SAMPLE_PREFIX):
            if source.value != TYPED_PATH:
                with source.prevent(Select.Changed):
                    source.value = TYPED_PATH
            if path_input.value != data.corpus and (force or not path_input.has_focus):
                with path_input.prevent(Input.Changed):
                    path_input.value = data.corpus
        for row in self.query(FieldRow):
            row.set_value(getattr(data, row.path.split(".")[1]), force=force)
            row.set_problem(problems.get(row.path))
        shown = [f"{path}: {problems[path]}" for path in
                 ("data.corpus", "data.tokenizer", "data.vocab_size", "data.encoding_errors")
                 if path in problems]
        if shown:
            self._show_status("✗ " + "; ".join(shown), "error")
        if self._data_key() != self._loaded_for:
            self.schedule_reload()

    def _data_key(self) -> tuple[Any, ...]:
        d = self.session.data
        return (d.corpus, d.tokenizer, d.vocab_size, d.encoding_errors, tuple(d.split),
                self.session.base_dir)

    # ------------------------------------------------------------------ reading

    def schedule_reload(self) -> None:
        if self._reload_timer is not None:
            self._reload_timer.stop()
        self._reload_timer = self.set_timer(RELOAD_DELAY, self.reload)

    def action_reload(self) -> None:
        self._loaded_for = None
        self.reload()

    def reload(self) -> None:
        from core.session import validate

        if self._reload_timer is not None:
            self._reload_timer.stop()
            self._reload_timer = None
        key = self._data_key()
        data_problems = [p for p in validate(self.session) if p.startswith("data.")]
        self._loaded_for = key
        if data_problems:
            self.post_message(CorpusFailed(data_problems[0]))
            return
        self.reading = True
        self._show_reading()
        self._read(copy.deepcopy(self.session.data), self.session.base_dir)

    @work(thread=True, exclusive=True, group="corpus")
    def _read(self, data: DataConfig, base_dir: Path | None) -> None:
        from core.errors import LlmlabError

        worker = get_current_worker()

        def progress(phase: str, fraction: float) -> None:
            if worker.is_cancelled:
                raise _Cancelled()
            self.post_message(CorpusProgress(phase, fraction))

        try:
            view = read_corpus(data, base_dir, progress)
        except _Cancelled:
            return
        except LlmlabError as e:
            if not worker.is_cancelled:
                self.post_message(CorpusFailed(str(e)))
            return
        except Exception as e:  # a bug, still shown as one line; the app stays up
            if not worker.is_cancelled:
                self.post_message(CorpusFailed(f"internal error: {type(e).__name__}: {e}"))
            return
        if not worker.is_cancelled:
            self.post_message(CorpusLoaded(view))

    def on_corpus_progress(self, event: CorpusProgress) -> None:
        event.stop()
        if self.reading:
            self._show_status(f"{event.phase} {event.fraction:.0%} …", "muted")

    def on_corpus_loaded(self, event: CorpusLoaded) -> None:
        view: CorpusView = event.view
        self.reading = False
        self.view = view
        self.error = None
        cache = "cache hit" if view.cache_hit else "tokenized now"
        self._show_status(f"✓ {view.stats.n_tokens:,} tokens, vocabulary "
                          f"{view.stats.vocab_size:,} ({cache})", "ok")
        self.query_one(CorpusStatsView).show(view.stats, view.cache_hit)
        self.query_one("#vocab-in-use", Static).update(f"vocab {view.stats.vocab_size:,}")
        self.query_one(TokenPreview).show(view.preview, view.spans)
        self.heat_error = None  # (new text: score it again, whatever failed before)
        self.update_heatmap()
        # (the message bubbles on to the app, for the Model pane's summary)

    def on_corpus_failed(self, event: CorpusFailed) -> None:
        self._failed(event.message)

    def _failed(self, message: str) -> None:
        self.reading = False
        self.view = None
        self.error = message
        self._show_status(f"✗ {message}", "error")
        self.query_one(CorpusStatsView).clear()
        self.query_one("#vocab-in-use", Static).update("")
        self.query_one(TokenPreview).show("", [])
        self.update_heatmap()

    def _show_status(self, text: str, kind: str) -> None:
        self._status = (text, kind)
        status = self.query_one("#corpus-status", Static)
        width = status.content_size.width or self.app.size.width - 2
        # (two lines at most: the cause must show; Content: a path is never markup)
        status.update(Content(fit_words(text, width)))
        status.set_classes(f"-{kind}")

    def on_resize(self) -> None:
        if self._status is not None:
            self._show_status(*self._status)

    # ------------------------------------------------------------------ choosing a corpus

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "corpus-source":
            return
        event.stop()
        if event.value == BROWSE:
            self.action_browse()
        elif event.value == TYPED_PATH:
            if event.select.has_focus:  # (not the Changed a new Select posts on mount)
                self.query_one("#corpus-path", Input).focus()
        else:
            with self.query_one("#corpus-path", Input).prevent(Input.Changed):
                self.query_one("#corpus-path", Input).value = ""
            self.post_message(SessionEdited("data.corpus", event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "corpus-path":
            return
        event.stop()
        self.use_path(event.value)

    def on_input_blurred(self, event: Input.Blurred) -> None:
        if event.input.id == "corpus-path" and event.value.strip() \
                and event.value.strip() != self.session.data.corpus:
            self.use_path(event.value)

    def use_path(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        self.post_message(SessionEdited("data.corpus", text))

    def palette_commands(self) -> list[PaletteCommand]:
        """The pane's bindings that are palette commands too (tui/bindings.toml)."""
        return [PaletteCommand(f"Dataset: {title}", about, getattr(self, f"action_{action}"))
                for action, title, about in palette_entries("dataset")]

    def action_browse(self) -> None:
        from tui.screens.path_picker import PathPickerScreen

        def chosen(path: Path | None) -> None:
            source = self.query_one("#corpus-source", Select)
            if path is None:
                if source.value == BROWSE:
                    with source.prevent(Select.Changed):
                        source.value = (self.session.data.corpus
                                        if self.session.data.corpus.startswith(SAMPLE_PREFIX)
                                        else TYPED_PATH)
                return
            with source.prevent(Select.Changed):
                source.value = TYPED_PATH
            with self.query_one("#corpus-path", Input).prevent(Input.Changed):
                self.query_one("#corpus-path", Input).value = str(path)
            self.use_path(str(path))

        start = self.session.base_dir or Path.cwd()
        self.app.push_screen(
            PathPickerScreen("Corpus: a text file or a folder of them", start, pick="any"),
            chosen)

    def action_leave_field(self) -> None:
        self.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "move_field":  # (from inside a field only: on the pane, keys act)
            return self.screen.focused is not self
        return True

    def action_move_field(self, direction: int) -> None:
        """Up/down: the previous/next field, as in every form."""
        (self.screen.focus_next if direction > 0 else self.screen.focus_previous)()

    # ------------------------------------------------------------------ surprise heatmap

    @property
    def preview_text(self) -> str:
        return self.view.preview if self.view is not None else ""

    def action_toggle_heatmap(self) -> None:
        """h: the preview coloured by each token's loss under the loaded model, or back to the
        token boundaries."""
        if self.heatmap:
            self.heatmap = False
            self.heat_error = None
            self._pending = self._pending_key = None
            self._awaiting_model = False
            self.update_heatmap()
            return
        if self._model_source() is None and not self._has_run():
            how = self.how_to_load(verb="load", where="the Runs pane", then_open=False)
            self.notify(f"no model to score the preview with: {how}",
                        severity="warning", timeout=8)
            return
        self.heatmap = True
        self.heat_error = None
        self.update_heatmap()

    def _model_source(self) -> str | None:
        return self.model_source

    def _has_run(self) -> bool:
        """Whether the session has a run to load (the app's LoadModelRequest(None) loads the
        newest), or the app is loading a model already."""
        from core.runs import newest_run

        if self.model_loading:
            return True
        session = self.session
        return newest_run(session.resolve(session.train.runs_dir), session.name) is not None

    def update_heatmap(self, source: str | None = None) -> None:
        """Bring the heatmap up to date with the preview text and the loaded model (`source`:
        a model just reported loaded): show the scores, ask for them, or ask for a model."""
        preview = self.query_one(TokenPreview)
        legend = self.query_one(SurpriseLegend)
        title = self.query_one("#preview-title", Label)
        title.display = not self.heatmap
        legend.display = self.heatmap
        if not self.heatmap:
            preview.hide_heat()
            return
        text = self.preview_text
        source = source or self._model_source()
        key = (text, source or "")
        if self.heat_error is not None:
            preview.hide_heat()
            legend.show_message(self.heat_error, error=True)
        elif not text:
            preview.hide_heat()
            legend.show_message("no preview text to score" if not self.reading
                                else "waiting for the corpus …")
        elif source is None:
            preview.hide_heat()
            if not self._awaiting_model and not self.model_loading:
                self.post_message(LoadModelRequest(None))
            self._awaiting_model = True  # (its load, or the one the app has under way)
            legend.show_message("loading the session's newest run …")
        elif self.scored is not None and key == self._scored_key:
            scored = self.scored
            scale = HeatScale.for_mean(scored.mean_loss)
            preview.show_heat(scored.spans, scored.losses, scale)
            legend.show_scale(scale, scored.mean_loss, scored.source,
                              self._model_steps.get(scored.source))
        elif key != self._pending_key:
            preview.hide_heat()
            score = ScoreText(text)
            self._pending, self._pending_key = score.request_id, key
            self.post_message(EngineRequest(score))
            legend.show_message(f"scoring the preview under {run_name(source)} …")

    def engine_event(self, event: msg.Event) -> None:
        match event:
            case msg.ModelLoaded():
                self._model_loaded(event)
            case msg.TextScored():
                self._scored(event)
            case msg.Error():
                self._score_failed(event)

    def _model_loaded(self, event: msg.ModelLoaded) -> None:
        self._model_steps[event.source] = event.step
        self._awaiting_model = False
        if self.heatmap:
            self.heat_error = None
            self.update_heatmap(event.source)

    def _scored(self, event: msg.TextScored) -> None:
        if event.request_id != self._pending:
            return  # an answer for text or a model no longer shown
        self._scored_key, self._pending, self._pending_key = self._pending_key, None, None
        self.scored = event
        self.update_heatmap(self._scored_key[1] if self._scored_key else None)

    def _score_failed(self, e: msg.Error) -> None:
        """A scoring (or the model load it waits for) failed: one line, the boundaries stay."""
        ours = e.request_id != 0 and (
            e.request_id == self._pending
            or (self._awaiting_model and e.request_id == self.model_request))
        if not self.heatmap or not ours:
            return
        self._pending = self._pending_key = None
        self._awaiting_model = False
        self.heat_error = e.message
        self.update_heatmap()
