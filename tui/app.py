"""The llmlab app: composes the panes of `tui.panes.PANES` and holds the state they show.

The app owns the session document (`self.document`, a `tui.document.SessionDocument`) and the
engine bridge (`self.client`). State flows down: the document is handed to every pane's
`show_session`, and the engine state panes read (`model_source`, `model_loading`,
`engine_state`, `busy`, `engine_id`) is reactive here and bound to each pane's own reactives.
Messages go up: panes post `SessionEdited`, `EngineRequest`, `Pane.Show` ... Editing, saving
and opening are `tui.session_actions`; steering a training is `tui.training_actions`; loading
a model into the engine's workbench and passing the panes' commands on is
`tui.workbench_actions`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer

from core import messages as msg
from core.session import Session
from core.text import visible
from core.values import EngineState
from tui.commands import PaletteCommand
from tui.document import SessionDocument
from tui.engine_client import EngineClient
from tui.hangup import HangupGuard
from tui.keymap import bind, key_display, keys, load_user_keymap
from tui.messages import EngineEvent
from tui.panes import PANES, Pane, pane_bindings, pane_styles
from tui.panes.dataset import DatasetPane
from tui.panes.model import ModelPane, form_fields
from tui.panes.train import TrainPane
from tui.quit_actions import QuitActions
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.session_actions import SessionActions
from tui.settings import DEFAULT_THEME, Settings, load_settings, save_settings
from tui.themes import VARIABLE_DEFAULTS, load_themes
from tui.training_actions import TrainingActions
from tui.widgets.cycle_select import CycleSelect
from tui.widgets.field_row import FieldRow
from tui.widgets.number_input import NumberInput
from tui.widgets.title_bar import TitleBar
from tui.workbench_actions import WorkbenchActions


class LlmlabApp(SessionActions, TrainingActions, WorkbenchActions, QuitActions,
                 App[None]):
    CSS_PATH = ["app.tcss", *pane_styles()]
    TITLE = "llmlab"
    AUTO_FOCUS = None
    BINDINGS = [
        bind("train.start", "start_training", "Start",
             help="Start a new run (the session must have no problems)"),
        bind("train.pause", "toggle_pause", "Pause",
             help="Pause the run / resume it"),
        bind("train.stop", "stop_training", "Stop",
             help="Stop the run after this step, saving a checkpoint"),
        *pane_bindings(),
        bind("app.help", "help", "Help", show=False,
             help="This list of keys"),
        bind("app.save", "save", "Save", show=False, priority=True,
             help="Save the session (asks where, the first time)"),
        bind("app.open", "open", "Open", show=False, priority=True,
             help="Open a session file (asks before dropping unsaved edits)"),
        bind("app.quit", "quit", "Quit", show=False, priority=True,
             help="Quit (asks first if a run goes or edits are unsaved)"),
    ]

    # The state panes read, bound to their reactives of the same names (Pane).
    session_path: var[Path | None] = var(None)
    model_source: var[str | None] = var(None)  # the run / compressed model the engine has
    model_loading: var[str | None] = var(None)  # a LoadRun sent and not yet answered
    model_request: var[int] = var(0)  # the request id of the last LoadRun sent (0: none)
    engine_state: var[EngineState] = var(EngineState.IDLE)
    busy: var[bool] = var(False, bindings=True)  # a run goes: the training keys change
    engine_id: var[int] = var(0)  # engines started so far: a new one forgot every request

    def __init__(self, session: Session | None = None, session_path: Path | None = None, *,
                 engine_factory: Callable[..., Any] | None = None,
                 attach: Path | None = None, jobs: bool | None = None) -> None:
        """`attach`: a run folder the Train pane follows from the start (`llmlab attach`).
        `jobs`: trainings are jobs of their own (tui.job_client; the default, except when a
        test hands in an `engine_factory`, whose engine then trains in-process as well)."""
        super().__init__()
        # No smooth scrolling or fades: over SSH every frame costs, and keys must feel instant.
        self.animation_level = os.environ.get("TEXTUAL_ANIMATIONS", "none")  # type: ignore
        if session is None:
            from core.samples import default_session_path, load_default_session

            session, session_path = load_default_session(), default_session_path()
        self.document = SessionDocument(session, session_path)
        self.set_reactive(LlmlabApp.session_path, self.document.path)
        self.corpus: Any = None  # tui.panes.dataset.CorpusView of the session's corpus
        self.run_session: Session | None = None  # the session the current run started with
        self.live: dict[str, float] = {}  # live hyperparameters as the run has them
        self.startup_problems: list[str] = []
        self._engine_factory = engine_factory
        self._jobs = engine_factory is None if jobs is None else jobs
        self._attach = attach
        self._quitting = False
        self._hangup = HangupGuard(self._stop_engine_now)
        self._kept_changes: dict[str, Any] = {}  # the last run's live changes, offered
        self.settings: Settings = load_settings()
        themes, problems = load_themes()
        self.startup_problems += problems
        self.llmlab_themes = [theme.name for theme in themes]
        for theme in themes:
            self.register_theme(theme)
        wanted = self.settings.theme
        self.theme = wanted if wanted in self.available_themes else DEFAULT_THEME
        self.client: EngineClient  # made on mount: it posts engine events to the app
        self.training: Any  # made on mount: a JobClient, or the EngineClient (in-process)

    # ------------------------------------------------------------------ the document

    @property
    def session(self) -> Session:
        return self.document.session

    @property
    def dirty(self) -> bool:
        return self.document.dirty

    @property
    def problem_lines(self) -> list[str]:
        return self.document.problem_lines

    # ------------------------------------------------------------------ layout

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(VARIABLE_DEFAULTS)

    def compose(self) -> ComposeResult:
        yield TitleBar([(p.pane_name(), p.TITLE) for p in PANES], id="title-bar")
        with ContentSwitcher(initial=PANES[0].pane_name(), id="panes"):
            for pane_class in PANES:
                yield pane_class(self.document).data_bind(
                    LlmlabApp.session_path, LlmlabApp.model_source, LlmlabApp.model_loading,
                    LlmlabApp.model_request, LlmlabApp.engine_state, LlmlabApp.busy,
                    LlmlabApp.engine_id)
        yield Footer(compact=True)

    def notify(self, message: str, **kwargs: Any) -> None:
        """Every notification (a pane's or an engine error quoting a name from a file) with
        its control characters made visible, line breaks kept."""
        super().notify(visible(message, keep="\n"), **kwargs)

    def on_mount(self) -> None:
        keymap, problems = load_user_keymap(known=[f"app.{p.pane_name()}" for p in PANES])
        self.startup_problems += problems
        if keymap:
            self.set_keymap(keymap)
        from tui.engine_client import quiet_engine

        self.client = EngineClient(self, self._engine_factory or quiet_engine,
                                   observe=self._engine_event_seen)
        self.training = self.client
        if self._jobs:
            from tui.job_client import JobClient

            self.client.workbench_only = True
            self.training = JobClient(self, self.client.deliver,
                                      on_attached=self._job_attached)
        for pane in self.panes():
            if pane.ENGINE_EVENTS:
                self.client.subscribe(pane, *pane.ENGINE_EVENTS)
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        title = self.query_one(TitleBar)
        title.help_key = self._key("app.help")
        title.pane = self.current_pane
        title.pane_keys = {p.pane_name(): self._first_key(f"app.{p.pane_name()}", p.KEY)
                           for p in PANES}
        self.session_changed()
        self.train_pane.greet()
        if self._attach is not None:  # (`llmlab attach`: the app opens on the Train pane)
            self.query_one(ContentSwitcher).current = TrainPane.pane_name()
            self.attach_run(self._attach, show=False)
        for problem in self.startup_problems:
            self.notify(problem, severity="warning", timeout=8)
        # The first frame is complete: the pane shown has the focus, and the footer lists its
        # keys (Textual's Footer composes them only after a first refresh, a frame later).
        self.screen.set_focus(self.query_one(f"#{self.current_pane}", Pane))
        footer = self.query_one(Footer)  # (in its own context: its compose binds its data)
        footer.call_later(footer.bindings_changed, self.screen)
        footer.call_later(footer.recompose)
        self.call_after_refresh(lambda: self.show_pane(self.current_pane))
        self._hangup.install()

    def on_ready(self) -> None:
        """The first frame is on screen: now what it does not wait for, in the background
        (the corpus's statistics, the newest run's curves, a job of this session to follow)."""
        self.dataset_pane.reload()
        if self._attach is None:
            self.train_pane.show_newest_run(self.session)
            if self._jobs:
                self.call_later(self._attach_live_run)

    def _first_key(self, binding_id: str, default: str | None = None) -> str:
        """A binding's first key as the keymap has it (Textual's name: "d", "question_mark")."""
        return self._keymap.get(binding_id, keys(binding_id, default)).split(",")[0]

    def _stop_engine_now(self) -> None:
        """Stop the engine and wait for it (the terminal went away: see tui.hangup)."""
        if getattr(self, "client", None) is not None and self.client.alive:
            self.client.close(timeout=60)

    def panes(self) -> list[Pane]:
        """The panes, in the registry's order."""
        return [self.query_one(f"#{p.pane_name()}", p) for p in PANES]

    @property
    def dataset_pane(self) -> DatasetPane:
        return self.query_one(DatasetPane)

    @property
    def model_pane(self) -> ModelPane:
        return self.query_one(ModelPane)

    @property
    def train_pane(self) -> TrainPane:
        return self.query_one(TrainPane)

    @property
    def current_pane(self) -> str:
        return self.query_one(ContentSwitcher).current or PANES[0].pane_name()

    def client_busy(self) -> bool:
        """A training goes (the in-process engine's, or a job's this app follows)."""
        training = getattr(self, "training", None)  # (none before the app is mounted)
        return training is not None and training.busy

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide the training keys that do nothing now (start while a run goes, ...)."""
        busy = self.client_busy()
        if action == "start_training":
            return not busy
        if action in ("toggle_pause", "stop_training", "scale_lr"):
            return busy
        return True

    async def action_show_pane(self, pane: str) -> None:
        await self.show_pane(pane)

    async def on_pane_show(self, message: Pane.Show) -> None:
        await self.show_pane(message.pane)

    async def show_pane(self, pane: str) -> None:
        shown = next((p for p in self.panes() if p.pane_name() == pane), None)
        if shown is None:
            return
        if shown.WANTS_MODEL and self.model_source is None:
            self.load_model(None, quiet=True)
        await shown.build()  # (a pane's widgets are mounted at its first show)
        self.query_one(ContentSwitcher).current = pane
        self.query_one(TitleBar).pane = pane
        shown.focus()
        await shown.shown()

    async def focus_field(self, path: str) -> None:
        """Show the Model pane with the cursor in the field `path` (e.g. "model.n_embd")."""
        await self.show_pane("model")
        row = self.model_pane.rows().get(path)
        if row is not None and not row.display:  # (a field this model family does not read)
            archs = ", ".join(row.meta.get("archs") or ())
            self.notify(f"{path}: only for {archs} (model.arch is {self.session.model.arch})",
                        severity="warning", timeout=5)
        elif row is not None:
            self.call_after_refresh(row.editor.focus)

    # ------------------------------------------------------------------ the engine

    def _key(self, binding_id: str) -> str:
        """A binding's key as the user's keymap has it, for messages that name it."""
        return key_display(self, binding_id)

    def _title_bar(self) -> TitleBar | None:
        """The title bar; None once the screen is gone (an engine event can still arrive
        while the app shuts down)."""
        from textual.app import ScreenStackError

        try:
            return next(iter(self.query(TitleBar)), None)
        except ScreenStackError:
            return None

    def on_engine_event(self, message: EngineEvent) -> None:
        """What the app itself does with an engine event (the panes get their own copies of
        those they name in ENGINE_EVENTS)."""
        match message.event:
            case msg.Status() as e:
                self._engine_status(e)
            case msg.RunStarted() as e:
                if title := self._title_bar():
                    title.step = f"0/{e.max_steps}"
            case msg.StepMetrics() as e:
                if title := self._title_bar():
                    title.step = f"{e.step}/{e.max_steps}"
            case msg.HparamChanged() as e:
                self.live[e.name] = e.new
            case msg.Warning() as e:
                self.notify(e.message, title="engine", severity="warning", timeout=8)
            case msg.Error() as e:
                self._engine_failed(e)

    def on_train_pane_waits(self, message: TrainPane.Waits) -> None:
        if title := self._title_bar():
            title.waiting = message.waiting

    def _engine_status(self, event: msg.Status) -> None:
        title = self._title_bar()
        if title is None or self._quitting:
            return
        title.state = event.state
        if event.state.ended:
            self._offer_run_changes()
            self.run_session = None
        if event.state in (EngineState.FINISHED, EngineState.STOPPED) and \
                self.training.run_dir:
            # The run just trained is the model to prune, sample from and score text with.
            self.load_model(self.training.run_dir, quiet=True)
        self.refresh_bindings()

    # ------------------------------------------------------------------ themes, help, palette

    def _remember_theme(self, theme: Any) -> None:
        self.settings.theme = theme.name
        save_settings(self.settings)

    def help_groups(self) -> list[tuple[str, list[Binding]]]:
        """The help screen: the app's keys, then each pane's own (registry order), then the
        keys of forms and dialogs."""
        palette = Binding(self.COMMAND_PALETTE_BINDING, "command_palette",
                          "Command palette: any action by name")
        focus = [Binding("enter", "", "Commit a value (in Generate: and generate)"),
                 Binding("tab", "", "Next field or control (after escape: back to the "
                                    "field left)"),
                 Binding("shift+tab", "", "Previous field or control")]
        panes = [(f"{p.TITLE} pane", [b for b in p.BINDINGS if isinstance(b, Binding)])
                 for p in PANES]
        return [
            ("Anywhere (not while typing in a field)",
             [*self.BINDINGS, palette]),  # type: ignore[list-item]
            *panes,
            ("Forms and dialogs (Model, Generate, the live edit)",
             [*FieldRow.BINDINGS, *NumberInput.BINDINGS,  # type: ignore[list-item]
              CycleSelect.BINDINGS[0], *focus]),
            ("Dialogs", list(ConfirmScreen.BINDINGS)),  # type: ignore[arg-type]
        ]

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.help_groups()))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette (ctrl+p): the app's commands, then each pane's own."""
        yield from self.palette_commands()

    def palette_commands(self) -> list[PaletteCommand]:
        c = PaletteCommand
        commands = [c(f"Go to {p.TITLE}", p.ABOUT, partial(self.show_pane, p.pane_name()))
                    for p in PANES]
        commands += [
            c("Model: load the newest run", "for pruning, generating and the surprise view",
              partial(self.load_model, None)),
            c("Model: load a run or compressed-model folder…",
              "e.g. one written by the Prune pane (w): generate from it, prune it further",
              self.action_pick_model),
            c("Help: keys", "every key binding", self.action_help),
            c("Quit", "asks first if a training job started here runs (leave it or stop it)",
              self.action_quit),
        ]
        commands += self.training_commands() + self.session_commands()
        for pane in self.panes():
            commands += [c._replace(callback=partial(self._built_first, pane, c.callback))
                         for c in pane.palette_commands()]
        for path, _kind, meta in form_fields():
            live = " (live)" if meta.get("live") else ""
            commands.append(c(f"Field: {path}", meta.get("doc", "") + live,
                              partial(self.focus_field, path)))
        for name in self.llmlab_themes:
            commands.append(c(f"Theme: {name}", "colours; remembered for next time",
                              partial(setattr, self, "theme", name)))
        return commands

    @staticmethod
    async def _built_first(pane: Pane, command: Callable[[], Any]) -> None:
        """A pane's palette command, run once the pane's widgets are mounted (it may not
        have been shown yet)."""
        await pane.build()
        result = command()
        if inspect.isawaitable(result):
            await result

    def on_unmount(self) -> None:
        self._hangup.uninstall()
        client = getattr(self, "client", None)
        if client is not None and client.alive:
            client.close(timeout=30)

