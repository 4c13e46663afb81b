"""The Generate pane: a prompt, the sampling controls, and text streamed from the model.

The pane never runs a model: it posts `EngineRequest(Generate(...))` (the app sends it to the
engine, whose workbench holds the loaded run and, after pruning, the compressed candidate) and
shows the `Generated` events that come back, each carrying the new piece of text, the
tokens so far and tokens/s. Every request has its own id; events of any other id (an earlier
generation that was replaced) are ignored. Side by side, the same prompt and seed go to the
dense and the compressed model as two requests, which the engine runs together (a token of
each in turn), and each stream goes to its own column.

The sampling values are the session's `[generate]` section: a committed change is posted as
`SessionEdited`, and `show_session` shows an opened session's values.

For benchmarks (bench/ui.py): `tokens_per_s` holds the last tokens/s shown per model, and
`generations_done` counts the generations that finished (done or stopped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Input, Label, Select, Static

from core import messages as msg
from core.session import GenerateConfig
from tui.commands import PaletteCommand
from tui.document import SessionDocument
from tui.keymap import bind, bindings
from tui.messages import EngineRequest, SessionEdited
from tui.panes.base import Pane
from tui.widgets.generate_controls import MODELS, GenerateControls
from tui.widgets.generate_output import GenerateColumn
from tui.widgets.generate_prompt import PromptInput

IN_FLIGHT = ("waiting", "generating", "stopping")


class GeneratePane(Pane):
    KEY = "g"
    TITLE = "Generate"
    ABOUT = "sample text, dense and compressed"
    WANTS_MODEL = True
    BINDINGS: ClassVar[list[Binding]] = [
        *bindings("generate"),  # (tui/bindings.toml)
        bind("pane.leave_field", "leave_field", "Leave field",
             help="Leave the field being edited (single keys work again)"),
        bind("pane.next_field", "move_field(1)", "", show=False),
        bind("pane.previous_field", "move_field(-1)", "", show=False),
    ]
    ENGINE_EVENTS = (msg.Generated, msg.ModelLoaded, msg.Compressed, msg.Error)

    def __init__(self, doc: SessionDocument, **kwargs: Any) -> None:
        super().__init__(doc, **kwargs)
        self.model = "dense"  # the model generated from, side by side off
        self.side_by_side = False
        self.generate_config = GenerateConfig()  # the session's [generate], as last shown
        self.runs_dir: Path | None = None
        self.loaded: msg.ModelLoaded | None = None
        self.requests: dict[int, str] = {}  # request id -> model, for the requests under way
        self._stopping = False
        self._engine = 0  # which engine the requests went to (EngineClient.spawned)
        self.text_source: str | None = None  # the model the text shown was generated from
        # For benchmarks and tests: the last tokens/s shown per model, generations finished.
        self.tokens_per_s: dict[str, float] = {}
        self.generations_done = 0

    def compose(self) -> ComposeResult:
        yield Static("", id="generate-source", markup=False)
        with Horizontal(id="generate-prompt-row"):
            yield Label("prompt", classes="generate-label")
            yield PromptInput(id="generate-prompt",
                              placeholder="text to start from (\\n: a line break); "
                                          "enter generates")
        yield GenerateControls(id="generate-controls")
        yield Static("", id="generate-problem", markup=False)
        with Horizontal(id="generate-columns"):
            for model in MODELS:
                yield GenerateColumn(model, id=f"generate-{model}")

    async def widgets_mounted(self) -> None:
        self._show_columns()
        self.show_source()

    # ------------------------------------------------------------------ parts

    @property
    def prompt_input(self) -> PromptInput:
        return self.query_one(PromptInput)

    @property
    def controls(self) -> GenerateControls:
        return self.query_one(GenerateControls)

    def column(self, model: str) -> GenerateColumn:
        return self.query_one(f"#generate-{model}", GenerateColumn)

    def shown_models(self) -> tuple[str, ...]:
        return MODELS if self.side_by_side else (self.model,)

    @property
    def generating(self) -> bool:
        return bool(self.requests)

    @property
    def done(self) -> bool:
        """Nothing under way, and something was generated."""
        return not self.requests and self.generations_done > 0

    # ------------------------------------------------------------------ the session

    def show_session(self, doc: SessionDocument, force: bool = False) -> None:
        """The session changed (or was opened): show its [generate] values."""
        session = doc.session
        self.generate_config = session.generate
        self.runs_dir = session.resolve(session.train.runs_dir)
        if not self.built:
            return
        self.controls.show_values(session.generate)
        if not self.prompt_input.has_focus:
            self.prompt_input.show_prompt(session.generate.prompt)

    def _commit_prompt(self) -> None:
        prompt = self.prompt_input.prompt
        if prompt != self.generate_config.prompt:
            self.post_message(SessionEdited("generate.prompt", prompt, final=True))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the prompt or in a sampling control (whose good value the controls
        committed and let through) generates."""
        event.stop()
        if event.input is self.prompt_input:
            self._commit_prompt()
        self.focus()  # single keys again: c stops what this starts
        self.action_generate()

    def on_descendant_blur(self, event: events.DescendantBlur) -> None:
        if event.widget is self.prompt_input:
            self._commit_prompt()

    def on_generate_controls_problem_changed(self, event: GenerateControls.ProblemChanged) -> None:
        self._show_problem(event.problem)

    def _show_problem(self, problem: str | None) -> None:
        line = self.query_one("#generate-problem", Static)
        line.update(problem or "")
        line.display = bool(problem)

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "generate-model" and event.value in MODELS:
            event.stop()
            self._set_model(str(event.value))

    # ------------------------------------------------------------------ the model

    def show_source(self) -> None:
        """The line naming the loaded model, or saying how to get one."""
        if not self.built:
            return
        loading, source = self.model_loading, self.model_source
        line = self.query_one("#generate-source", Static)
        if loading:
            line.update(Content.assemble(("model ", "$text-muted"),
                                         f"loading {self._short(loading)} …"))
        elif source is not None and self.loaded is not None:
            e = self.loaded
            line.update(Content.assemble(("model ", "$text-muted"), (self._short(e.source),
                                                                      "bold"),
                                         (f" · {e.arch} · step {e.step} · "
                                          f"vocab {e.vocab_size}", "$text-muted")))
        else:
            line.update(Content.assemble(("no model loaded: ", "$warning"), self.how_to_load()))
        if loading:
            hint = "loading the model …"
        elif source is None:
            hint = f"No model loaded: {self.how_to_load()}."
        else:
            hint = (f"{self._key('generate.prompt')} edits the prompt, "
                    f"{self._key('generate.generate')} generates")
        for model in MODELS:
            self.column(model).show_hint(hint)

    def _short(self, source: str) -> str:
        """A source path as it reads best: under the session's runs folder, relative to it."""
        path = Path(source)
        if self.runs_dir is not None and path.is_absolute():
            try:
                return str(path.relative_to(self.runs_dir.resolve()))
            except ValueError:
                pass
        return source

    def on_show(self) -> None:
        self.show_source()

    def engine_event(self, event: msg.Event) -> None:
        match event:
            case msg.Generated():
                self._generated(event)
            case msg.ModelLoaded():
                self._model_loaded(event)
            case msg.Compressed():
                self.column("compressed").set_label(event.figures.label)
            case msg.Error():
                self._failed(event)

    def _model_loaded(self, event: msg.ModelLoaded) -> None:
        self.loaded = event
        self.column("compressed").set_label("")  # a new model has no candidate yet
        if self.text_source not in (None, event.source) and not self.requests:
            for model in MODELS:  # (text of the previous model must not pass for this one's)
                self.column(model).clear()
            self.text_source = None
            self.app.notify(f"model changed to {self._short(event.source)}: the "
                            "previous model's text was cleared", timeout=4)
        self.show_source()

    # ------------------------------------------------------------------ generating

    def action_generate(self) -> None:
        try:
            values = self.controls.values()
        except ValueError as e:
            self._show_problem(str(e))
            self.app.notify(f"{e} (not sent)", severity="error")
            return
        if self.model_source is None and not self.model_loading:
            self.app.notify(f"no model loaded: {self.how_to_load()}", severity="warning")
            return
        self.controls.commit_all()
        self._commit_prompt()
        if self.requests:
            self._cancel()  # a new generation replaces the one under way
        prompt = self.prompt_input.prompt
        cfg = self.generate_config
        self.requests = {}
        self._stopping = False
        self.text_source = self.model_source or self.model_loading
        self._engine = self.engine_id
        for model in self.shown_models():
            command = msg.Generate(
                prompt, max_tokens=int(values["max_tokens"]),
                temperature=float(values["temperature"]), top_k=int(values["top_k"]),
                top_p=float(values["top_p"]), repetition_penalty=cfg.repetition_penalty,
                stop=tuple(cfg.stop), seed=int(values["seed"]), model=model)
            self.requests[command.request_id] = model
            self.column(model).begin(prompt, command.max_tokens)
            # Sent once the column is drawn: drawing while the engine generates takes a core
            # from it (core.generation_stream).
            self.call_after_refresh(self.post_message, EngineRequest(command))

    def _cancel(self) -> None:
        """A Cancel per generation under way, naming it (the engine runs them together, and
        ends them together); each request is answered with its last event."""
        for request_id in self.requests:
            self.post_message(EngineRequest(msg.Cancel(request_id)))

    def action_stop(self) -> None:
        if not self.requests:
            self.app.notify("nothing is being generated", severity="warning")
            return
        if self.engine_id != self._engine:
            # The engine was replaced (a training started with another session): the
            # requests ended with it, and no answer will come.
            for model in self.requests.values():
                self.column(model).finish("stopped")
            self.requests = {}
            return
        self._stopping = True
        self._cancel()
        for model in self.requests.values():
            self.column(model).set_state("stopping")

    def _generated(self, e: msg.Generated) -> None:
        model = self.requests.get(e.request_id)
        if model is None:
            return  # an earlier generation's late words
        column = self.column(model)
        column.append(e.text, e.tokens, e.tokens_per_s)
        self.tokens_per_s[model] = e.tokens_per_s
        if e.done:
            del self.requests[e.request_id]
            stopped = self._stopping and e.tokens < column.max_tokens
            column.finish("stopped" if stopped else "done")
            self.generations_done += 1
        elif self._stopping:
            column.set_state("stopping")

    def _failed(self, e: msg.Error) -> None:
        """A Generate the engine refused (no candidate, a bad value, a prompt the tokenizer
        cannot encode) comes back as an error naming its request."""
        if e.request_id and e.request_id == self.model_request:  # the app's LoadRun
            self.show_source()
        if e.request_id not in self.requests:
            return
        model = self.requests.pop(e.request_id)
        text = e.message
        if "nothing to generate" in text:
            text = (f"{text} (Prune pane: {self._key('app.prune')})")
        self.column(model).finish("failed", text)

    # ------------------------------------------------------------------ choices

    def _set_model(self, model: str) -> None:
        self.model = model
        self.controls.show_model(model)
        self._show_columns()

    def action_toggle_model(self) -> None:
        self._set_model(MODELS[(MODELS.index(self.model) + 1) % len(MODELS)])
        if self.side_by_side:
            self.app.notify(f"side by side shows both; {self.model} when it is off", timeout=3)

    def action_toggle_compare(self) -> None:
        self.side_by_side = not self.side_by_side
        self._show_columns()

    def _show_columns(self) -> None:
        shown = self.shown_models()
        for model in MODELS:
            self.column(model).display = model in shown
            self.column(model).set_narrow(self.side_by_side)
        self.query_one("#generate-columns").set_class(self.side_by_side, "-side-by-side")
        self.query_one("#generate-model", Select).disabled = self.side_by_side

    def action_edit_prompt(self) -> None:
        self.prompt_input.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("leave_field", "move_field"):  # (only from inside a field)
            return self.screen.focused is not self
        return True

    def action_leave_field(self) -> None:
        self.focus()

    def action_move_field(self, direction: int) -> None:
        """Up/down: the previous/next field, as in every form."""
        (self.screen.focus_next if direction > 0 else self.screen.focus_previous)()

    # ------------------------------------------------------------------ palette

    def palette_commands(self) -> list[PaletteCommand]:
        c = PaletteCommand
        other = "compressed" if self.model == "dense" else "dense"
        return [
            c("Generate: generate", "text from the prompt with these settings",
              self.action_generate),
            c("Generate: stop", "stop the generation under way", self.action_stop),
            c("Generate: side by side on/off",
              "dense and compressed, same prompt and seed "
              f"(now {'on' if self.side_by_side else 'off'})", self.action_toggle_compare),
            c("Generate: model dense/compressed",
              f"generate from the {other} model (now {self.model})", self.action_toggle_model),
        ]
