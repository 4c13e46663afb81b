"""The Dataset pane: choose a corpus and a tokenizer, see statistics and a token preview.

The corpus is read in a thread worker (core.dataset tokenizes on first use and caches), so a
large corpus never freezes the screen; a bad one shows core's one-line error in the pane.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Input, Label, Select, Static
from textual.worker import get_current_worker

from core.samples import SAMPLE_PREFIX, SAMPLES
from core.session import DataConfig, Session, field_doc
from tui.keymap import bind
from tui.messages import CorpusFailed, CorpusLoaded, CorpusProgress, SessionEdited
from tui.widgets.corpus_stats import CorpusStatsView
from tui.widgets.field_row import FieldRow
from tui.widgets.token_preview import TokenPreview

BROWSE = "browse…"
TYPED_PATH = "path"
PREVIEW_CHARS = 1200
RELOAD_DELAY = 0.4  # seconds of quiet after an edit before the corpus is read again


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


class DatasetPane(Vertical, can_focus=True):
    BINDINGS = [
        bind("dataset.browse", "browse", "Browse",
             help="Pick a corpus: a text file or a folder of them"),
        bind("dataset.reload", "reload", "Reload", show=False,
             help="Read the corpus again"),
        bind("pane.leave_field", "leave_field", "Leave field", show=False,
             help="Leave the field being edited (single keys work again)"),
    ]

    def __init__(self, session: Session, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.view: CorpusView | None = None
        self.error: str | None = None
        self.reading = False
        self._loaded_for: tuple[Any, ...] | None = None
        self._reload_timer: Timer | None = None

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        data = self.session.data
        options = [(f"{SAMPLE_PREFIX}{name}", f"{SAMPLE_PREFIX}{name}") for name in SAMPLES]
        options += [("typed path", TYPED_PATH), (BROWSE, BROWSE)]
        is_sample = data.corpus.startswith(SAMPLE_PREFIX) and data.corpus in dict(options)
        with Horizontal(id="corpus-line"):
            yield Label("corpus", classes="field-label")
            yield Select(options, value=data.corpus if is_sample else TYPED_PATH,
                         allow_blank=False, compact=True, id="corpus-source")
            yield Input("" if is_sample else data.corpus, compact=True, id="corpus-path",
                        placeholder="a file or folder; enter to use it")
        with Horizontal(id="tokenizer-line"):
            for name in ("tokenizer", "vocab_size", "encoding_errors"):
                path = f"data.{name}"
                kind = {"vocab_size": int}.get(name, str)
                yield FieldRow(path, kind, field_doc(path), getattr(data, name),
                               label={"vocab_size": "vocab", "encoding_errors": "utf-8"}.get(
                                   name, name), id_prefix="dataset", problem_text=False)
        yield Static("", id="corpus-status")
        yield CorpusStatsView(id="corpus-stats")
        yield Label("preview: token boundaries in alternating colours", id="preview-title")
        yield TokenPreview(id="token-preview")

    def on_mount(self) -> None:
        self.reload()

    # ------------------------------------------------------------------ session in

    def show_session(self, session: Session, problems: dict[str, str],
                     force: bool = False) -> None:
        """The app's session changed (an edit here or elsewhere, or another file opened)."""
        self.session = session
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
        self._show_status(f"reading {self.session.data.corpus} …", "muted")
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
        self.query_one(TokenPreview).show(view.preview, view.spans)
        # (the message bubbles on to the app, for the Model pane's summary)

    def on_corpus_failed(self, event: CorpusFailed) -> None:
        self._failed(event.message)

    def _failed(self, message: str) -> None:
        self.reading = False
        self.view = None
        self.error = message
        self._show_status(f"✗ {message}", "error")
        self.query_one(CorpusStatsView).clear()
        self.query_one(TokenPreview).show("", [])

    def _show_status(self, text: str, kind: str) -> None:
        status = self.query_one("#corpus-status", Static)
        status.update(text)
        status.set_classes(f"-{kind}")

    # ------------------------------------------------------------------ choosing a corpus

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "corpus-source":
            return
        event.stop()
        if event.value == BROWSE:
            self.action_browse()
        elif event.value == TYPED_PATH:
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
