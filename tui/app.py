"""The llmlab app: panes, session editing, the engine bridge, save/open, themes and keys.

The app owns the session being edited (`self.session`) and the engine bridge
(`self.client`). Panes show the session and post `SessionEdited` when the user changes a
field; the app applies the edit, validates the whole session (core's `validate`), and hands
each problem to the field it names. Engine events arrive as `tui.messages.Engine*` messages.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import ContentSwitcher, Footer

from core import messages as msg
from core.errors import LlmlabError, SessionError
from core.estimate import session_fit_problem
from core.messages import LoadRun
from core.session import LIVE_FIELDS, Session, load_session, save_session, validate
from core.text import visible
from tui.commands import LlmlabCommands, PaletteCommand
from tui.engine_client import EngineClient
from tui.keymap import bind, key_display, keys, load_user_keymap
from tui.messages import (
    CorpusFailed,
    CorpusLoaded,
    EngineFailed,
    EngineRequest,
    EngineStatus,
    EngineWarning,
    FieldError,
    HparamApplied,
    LoadModelRequest,
    ResumeRunRequest,
    RunBegan,
    SessionEdited,
    StepReported,
)
from tui.panes.dataset import DatasetPane
from tui.panes.generate import GeneratePane
from tui.panes.model import ModelPane, field_value, form_fields
from tui.panes.prune import PrunePane
from tui.panes.runs import RunsPane
from tui.panes.train import TrainPane
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.hparam_edit import HparamEditScreen
from tui.screens.path_picker import PathPickerScreen
from tui.settings import DEFAULT_THEME, Settings, load_settings, save_settings
from tui.themes import VARIABLE_DEFAULTS, load_themes
from tui.widgets.cycle_select import CycleSelect
from tui.widgets.field_row import FieldRow
from tui.widgets.number_input import NumberInput
from tui.widgets.title_bar import TitleBar

PANES = ("dataset", "model", "train", "prune", "generate", "runs")
# The panes of the lab's second half: each shows the session (`show_session`), lists its own
# palette commands, and names the engine messages it wants (`ENGINE_EVENTS`).
WORKBENCH_PANES = (PrunePane, GeneratePane, RunsPane)


def set_field(session: Session, path: str, value: Any) -> bool:
    """Set `section.field` (or `name`) of a session in place; True if the value changed."""
    *parents, leaf = path.split(".")
    obj: Any = session
    for part in parents:
        obj = getattr(obj, part)
    if getattr(obj, leaf) == value and type(getattr(obj, leaf)) is type(value):
        return False
    setattr(obj, leaf, value)
    return True


def live_values(session: Session) -> dict[str, Any]:
    """The session's live hyperparameters (core.session.LIVE_FIELDS) by dotted path."""
    return {name: field_value(session, name) for name in LIVE_FIELDS}


def needs_restart(run_session: Session, path: str) -> bool:
    """Whether editing `path` during a run would change that run: not the [generate]
    settings, nor [compress] unless it prunes while training."""
    section = path.partition(".")[0]
    if section == "generate" or "." not in path:
        return False
    if section == "compress":
        return run_session.compress.schedule == "gradual"
    return True


def package_dirs() -> list[Path]:
    """Folders of the installed llmlab packages: a session is never saved into them."""
    import core
    import sample_corpora
    import themes
    import tui

    return [Path(m.__file__).resolve().parent for m in (core, tui, themes, sample_corpora)]


def is_shipped(path: Path | None) -> bool:
    if path is None:
        return True
    resolved = Path(path).resolve()
    return any(resolved.is_relative_to(folder) for folder in package_dirs())


class LlmlabApp(App[None]):
    CSS_PATH = ["app.tcss", "panes/prune.tcss", "panes/generate.tcss", "panes/runs.tcss"]
    TITLE = "llmlab"
    AUTO_FOCUS = None
    COMMANDS = {LlmlabCommands}
    BINDINGS = [
        bind("train.start", "start_training", "Start",
             help="Start a new run (the session must have no problems)"),
        bind("train.pause", "toggle_pause", "Pause",
             help="Pause the run / resume it"),
        bind("train.stop", "stop_training", "Stop",
             help="Stop the run after this step, saving a checkpoint"),
        bind("app.dataset", "show_pane('dataset')", "Dataset", show=False,
             help="Dataset pane: corpus, tokenizer, statistics, preview"),
        bind("app.model", "show_pane('model')", "Model", show=False,
             help="Model pane: the session form and what the model costs"),
        bind("app.train", "show_pane('train')", "Train", show=False,
             help="Train pane: progress, plots and log of the run"),
        bind("app.prune", "show_pane('prune')", "Prune", show=False,
             help="Prune pane: prune, quantize and measure the model"),
        bind("app.generate", "show_pane('generate')", "Generate", show=False,
             help="Generate pane: sample text, dense and compressed"),
        bind("app.runs", "show_pane('runs')", "Runs", show=False,
             help="Runs pane: compare, open, resume and export runs"),
        bind("app.help", "help", "Help", show=False,
             help="This list of keys"),
        bind("app.save", "save", "Save", show=False, priority=True,
             help="Save the session (asks where, the first time)"),
        bind("app.open", "open", "Open", show=False, priority=True,
             help="Open a session file (asks before dropping unsaved edits)"),
        bind("app.quit", "quit", "Quit", show=False, priority=True,
             help="Quit (asks first if a run goes or edits are unsaved)"),
    ]

    def __init__(self, session: Session | None = None, session_path: Path | None = None, *,
                 engine_factory: Callable[..., Any] | None = None) -> None:
        super().__init__()
        # No smooth scrolling or fades: over SSH every frame costs, and keys must feel instant.
        self.animation_level = os.environ.get("TEXTUAL_ANIMATIONS", "none")  # type: ignore
        if session is None:
            from core.samples import default_session_path, load_default_session

            session, session_path = load_default_session(), default_session_path()
        self.session = session
        self.session_path = Path(session_path) if session_path else None
        self.saved = copy.deepcopy(session)
        self.saved_base = session.base_dir
        self.form_errors: dict[str, str] = {}
        self.problems: dict[str, str] = {}  # dotted path -> its first problem
        self.problem_lines: list[str] = []
        self.corpus: Any = None  # tui.panes.dataset.CorpusView of the session's corpus
        self.run_session: Session | None = None  # the session the current run started with
        self.live: dict[str, float] = {}  # live hyperparameters as the run has them
        self.model_source: str | None = None  # the run / compressed model the engine has loaded
        self.model_loading: str | None = None  # a LoadRun sent and not yet answered
        self.startup_problems: list[str] = []
        self._engine_factory = engine_factory
        self._quitting = False
        self._kept_changes: dict[str, Any] = {}  # the last run's live changes, offered
        self.settings: Settings = load_settings()
        themes, problems = load_themes()
        self.startup_problems += problems
        self.llmlab_themes = [theme.name for theme in themes]
        for theme in themes:
            self.register_theme(theme)
        wanted = self.settings.theme
        self.theme = wanted if wanted in self.available_themes else DEFAULT_THEME
        self.client: EngineClient  # made on mount: it posts to the Train pane

    # ------------------------------------------------------------------ layout

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(VARIABLE_DEFAULTS)

    def compose(self) -> ComposeResult:
        yield TitleBar(id="title-bar")
        with ContentSwitcher(initial="dataset", id="panes"):
            yield DatasetPane(self.session, id="dataset")
            yield ModelPane(self.session, id="model")
            yield TrainPane(id="train")
            yield PrunePane(id="prune")
            yield GeneratePane(id="generate")
            yield RunsPane(id="runs")
        yield Footer(compact=True)

    def notify(self, message: str, **kwargs: Any) -> None:
        """Every notification (a pane's or an engine error quoting a name from a file) with
        its control characters made visible, line breaks kept."""
        super().notify(visible(message, keep="\n"), **kwargs)

    def on_mount(self) -> None:
        keymap, problems = load_user_keymap()
        self.startup_problems += problems
        if keymap:
            self.set_keymap(keymap)
        from tui.engine_client import quiet_engine

        self.client = EngineClient(self.train_pane, self._engine_factory or quiet_engine,
                                   observe=self._engine_event_seen)
        for pane_class in (DatasetPane, *WORKBENCH_PANES):
            pane = self.query_one(pane_class)
            self.client.subscribe(pane, *pane_class.ENGINE_EVENTS)
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        title = self.query_one(TitleBar)
        help_key = self._keymap.get("app.help", keys("app.help")).split(",")[0]
        title.help_key = self.get_key_display(Binding(help_key, ""))
        title.pane_keys = {pane: self._keymap.get(f"app.{pane}", keys(f"app.{pane}")).split(",")[0]
                           for pane in PANES}
        self.session_changed()
        self.train_pane.greet()
        self.train_pane.show_newest_run(self.session)
        for problem in self.startup_problems:
            self.notify(problem, severity="warning", timeout=8)
        self.call_after_refresh(lambda: self.show_pane(self.current_pane))
        self.call_after_refresh(self._build_later)
        self._handle_hangup()

    def _handle_hangup(self) -> None:
        """The terminal went away (an SSH connection dropped, tmux killed): stop the engine
        (a running training saves a checkpoint) and exit. A plain Python handler, not the
        event loop's: once the terminal is gone Textual's output thread dies on its first
        write and the loop then blocks on the full output queue, where a loop handler never
        runs and the process would live on, reparented to init."""
        import signal

        try:
            self._sighup_before = signal.signal(signal.SIGHUP, self._hang_up)
        except (ValueError, AttributeError):
            pass  # not on this platform, or not in the main thread (tests)

    def _hang_up(self, signum: int, frame: object) -> None:
        _detach_from_terminal()  # what is still written goes nowhere, and blocks nothing
        if getattr(self, "client", None) is not None and self.client.alive:
            self.client.close(timeout=60)
        os._exit(0)

    async def _build_later(self) -> None:
        await self.model_pane.build_form()

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
        return self.query_one(ContentSwitcher).current or "dataset"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide the training keys that do nothing now (start while a run goes, ...)."""
        client = getattr(self, "client", None)
        busy = client is not None and client.busy
        if action == "start_training":
            return not busy
        if action in ("toggle_pause", "stop_training", "scale_lr"):
            return busy
        return True

    async def action_show_pane(self, pane: str) -> None:
        await self.show_pane(pane)

    async def show_pane(self, pane: str) -> None:
        if pane not in PANES:
            return
        if pane == "model":
            await self.model_pane.build_form()
        if pane in ("prune", "generate") and self.model_source is None:
            self.load_model(None, quiet=True)
        self.query_one(ContentSwitcher).current = pane
        self.query_one(TitleBar).pane = pane
        widget = self.query_one(f"#{pane}")
        widget.focus()
        if pane == "train":
            self.train_pane.redraw()

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

    # ------------------------------------------------------------------ the session

    @property
    def dirty(self) -> bool:
        return self.session != self.saved or self.session.base_dir != self.saved_base

    def on_session_edited(self, message: SessionEdited) -> None:
        self.edit(message.path, message.value, final=message.final)

    def on_field_error(self, message: FieldError) -> None:
        if message.error:
            self.form_errors[message.path] = message.error
        else:
            self.form_errors.pop(message.path, None)
        self.session_changed()

    def edit(self, path: str, value: Any, final: bool = True) -> None:
        """Change one field of the session, as if typed in the form."""
        if set_field(self.session, path, value):
            self.session_changed()
        if final and self.client.busy:
            self._apply_to_run(path, value)

    def session_changed(self, force: bool = False) -> None:
        """Validate and show the session everywhere after any change (`force`: also over
        text being typed, for a session replaced as a whole)."""
        lines = validate(self.session)
        self.problems = {}
        for line in lines:
            path, _, problem = line.partition(": ")
            self.problems.setdefault(path, problem)
        for path, error in self.form_errors.items():
            self.problems[path] = error
        self.problem_lines = lines + [f"{p}: {e}" for p, e in self.form_errors.items()]
        if not lines and (too_big := self._memory_problem()):
            self.problem_lines.append(too_big)  # (shown by the summary: no one field to blame)
        self.dataset_pane.show_session(self.session, self.problems, force)
        self.model_pane.show_session(self.session, self.problems, force)
        for pane_class in WORKBENCH_PANES:
            self.query_one(pane_class).show_session(self.session)
        self._show_summary()
        client = getattr(self, "client", None)
        busy = client is not None and client.busy  # (a run shows its own live values)
        self.train_pane.show_hparams(self.live if busy else live_values(self.session))
        title = self.query_one(TitleBar)
        title.session_name = self.session.name
        title.dirty = self.dirty

    def _memory_problem(self) -> str | None:
        """The model cannot fit in memory for training (with the corpus's vocabulary once read)."""
        view = getattr(self, "corpus", None)
        return session_fit_problem(self.session, view.vocab_size if view else None)

    def _show_summary(self) -> None:
        view = self.corpus
        self.model_pane.show_summary(view.vocab_size if view else None,
                                     view.train_tokens if view else None,
                                     len(self.problem_lines), self._memory_problem())

    def on_corpus_loaded(self, message: CorpusLoaded) -> None:
        self.corpus = message.view
        if self._title_bar() is not None:  # (not while the app shuts down)
            self.session_changed()  # (the real vocabulary: the memory check may change)

    def on_corpus_failed(self, message: CorpusFailed) -> None:
        self.corpus = None
        if self._title_bar() is not None:
            self._show_summary()

    # ------------------------------------------------------------------ training

    def _problem_notice(self, doing: str) -> bool:
        """Refuse `doing` while the session has problems (True if refused)."""
        if not self.problem_lines:
            return False
        n = len(self.problem_lines)
        self.notify(f"cannot {doing}: {n} problem{'s' * (n != 1)} in the session, first: "
                    f"{self.problem_lines[0]}", severity="error", timeout=8)
        return True

    def action_start_training(self) -> None:
        if self.client.busy:
            self.notify(f"a run is already going: stop it ({self._key('train.stop')}) first",
                        severity="warning")
            return
        if self._problem_notice("start training"):
            return
        self._start(self.session, None)

    def _start(self, run_session: Session, resume: str | None) -> None:
        """Start (or resume) training; the session the run has is `run_session`."""
        self.run_session = copy.deepcopy(run_session)
        self.live = live_values(run_session)
        try:  # (a resume brings the run's own session; a new run trains run_session)
            fresh = self.client.start(self.session if resume else run_session, resume)
        except LlmlabError as e:
            self.notify(str(e), severity="error")
            return
        if fresh:
            self._engine_replaced()
        self.train_pane.show_hparams(self.live)
        self.refresh_bindings()
        self.call_next(self.show_pane, "train")

    def on_resume_run_request(self, message: ResumeRunRequest) -> None:
        from core.runs import load_run_session, restart_session

        if self.client.busy:
            self.notify(f"a run is already going: stop it ({self._key('train.stop')}) first",
                        severity="warning")
            return
        try:
            frozen = (restart_session if message.fresh else load_run_session)(
                Path(message.path))
        except LlmlabError as e:
            self.notify(str(e), severity="error")
            return
        if message.fresh:
            self.notify(f"starting a new run from the session of {message.path}", timeout=4)
            self._start(frozen, None)
            return
        self.notify(f"resuming {message.path}", timeout=4)
        self._start(frozen, message.path)

    def action_toggle_pause(self) -> None:
        try:
            if self.client.state == "running":
                self.client.pause()
                self.train_pane.acknowledge("pause")
            elif self.client.state == "paused":
                self.client.resume()
                self.train_pane.acknowledge("resume")
            else:
                self.notify("no training is running", severity="warning")
        except LlmlabError as e:
            self.notify(str(e), severity="warning")

    def action_stop_training(self) -> None:
        if not self.client.busy:
            self.notify("no training is running", severity="warning")
            return
        try:
            self.client.stop()
            self.train_pane.acknowledge("stop")
        except LlmlabError as e:
            self.notify(str(e), severity="warning")

    def action_scale_lr(self, factor: float) -> None:
        if not self.client.busy:
            self.notify("no training is running: optim.lr is edited in the Model pane",
                        severity="warning")
            return
        new = float(f"{self.live['optim.lr'] * factor:.6g}")
        self.set_live("optim.lr", new)

    def action_edit_hparam(self) -> None:
        """During a run the change goes to the run only (its run.json and metrics record
        it); with no run going it edits the session, as the Model form would."""
        busy = self.client.busy
        current = self.live if busy else live_values(self.session)

        def chosen(result: tuple[str, float] | None) -> None:
            if result is not None:
                name, value = result
                value = self._as_field_type(name, value)
                if self.client.busy:
                    self.set_live(name, value)
                else:
                    self.edit(name, value)

        self.push_screen(HparamEditScreen(current, check=self._check_live, running=busy),
                         chosen)

    def set_live(self, path: str, value: Any) -> None:
        """Change a live hyperparameter of the running training, and of the run only: the
        session (what the next run starts with) and its saved state are left alone."""
        if value == self.live.get(path):
            return
        try:
            self.client.set_hparam(path, float(value))
        except LlmlabError as e:
            self.notify(str(e), severity="warning")
            return
        self.live[path] = value
        self.train_pane.show_hparams(self.live)

    def _as_field_type(self, name: str, value: float) -> Any:
        return int(value) if isinstance(field_value(self.session, name), int) else value

    def run_changes(self) -> dict[str, Any]:
        """The live values the run going (or just ended) was changed to, that the session
        does not have: offered to the session, never copied without asking."""
        if self.run_session is None:
            return {}
        started = live_values(self.run_session)
        return {path: value for path, value in self.live.items()
                if value != started.get(path) and value != field_value(self.session, path)}

    def _offer_run_changes(self) -> None:
        changes = self.run_changes()
        if changes:
            self._kept_changes = changes
            shown = ", ".join(f"{path} {value:g}" for path, value in changes.items())
            self.notify(f"the run changed {shown}; the session keeps its values (palette: "
                        "\"Train: keep the run's live values\" copies them)", timeout=10)

    def action_keep_run_changes(self) -> None:
        """Copy the live values the last run was changed to into the session, if the user
        says so."""
        changes = self.run_changes() or self._kept_changes
        if not changes:
            self.notify("no live value of the run differs from the session", timeout=4)
            return
        shown = ", ".join(f"{path} = {value:g}" for path, value in changes.items())

        def answered(yes: bool | None) -> None:
            if yes:
                for path, value in changes.items():
                    self.edit(path, value, final=False)
                self._kept_changes = {}

        self.push_screen(ConfirmScreen(f"Put the run's live values into the session?\n"
                                       f"{shown}", yes="keep them", no="leave the session"),
                         answered)

    def _check_live(self, name: str, value: float) -> str | None:
        """Why `value` cannot be `name`, as the session's validator says (None: it can): the
        edit dialog stays open with the line, and nothing reaches the session."""
        if isinstance(field_value(self.session, name), int) and not float(value).is_integer():
            return f"must be a whole number (got {value:g})"
        trial = copy.deepcopy(self.session)
        set_field(trial, name, self._as_field_type(name, value))
        for line in validate(trial):
            path, _, problem = line.partition(": ")
            if path == name:
                return problem
        return None

    def action_evaluate(self, split: str = "val") -> None:
        """The evaluation report of the model training now, else of the loaded model, else
        of this session's newest run (loaded first), shown in the Train pane. The engine
        computes it; the screen only says it is under way."""
        if not self.client.busy and self.model_source is None and self.model_loading is None:
            self.load_model(None)  # (says so if the session has no run yet)
            if self.model_loading is None:
                return
        try:
            if self.client.ensure(self.session):
                self._engine_replaced()
            self.client.send(msg.Evaluate(split))
        except LlmlabError as e:
            self.notify(str(e), severity="error")
            return
        self.train_pane.evaluating(split)
        if self.current_pane != "train":
            self.call_next(self.show_pane, "train")

    def _apply_to_run(self, path: str, value: Any) -> None:
        """A committed edit during a run: live fields go to the engine, others wait."""
        if path in LIVE_FIELDS:
            if path in self.problems:
                self.notify(f"{path}: {self.problems[path]} (not sent)", severity="error")
                return
            self.set_live(path, value)
        elif self.run_session is not None and needs_restart(self.run_session, path):
            if field_value(self.run_session, path) != value:
                self.notify(f"{path} needs a restart: the running training keeps its value; "
                            "it applies to the next run", severity="warning")

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

    def on_engine_status(self, message: EngineStatus) -> None:
        title = self._title_bar()
        if title is None or self._quitting:
            return
        title.state = message.event.state
        if message.event.state in ("finished", "stopped", "failed"):
            self._offer_run_changes()
            self.run_session = None
        if message.event.state in ("finished", "stopped") and self.client.run_dir:
            # The run just trained is the model to prune, sample from and score text with.
            self.load_model(self.client.run_dir, quiet=True)
        self.refresh_bindings()

    # ------------------------------------------------------------------ the workbench

    def load_model(self, path: str | None, quiet: bool = False) -> None:
        """Load a run (or a compressed model) into the engine's workbench; `path` None: the
        newest run of this session, if it has one (`quiet`: say nothing if it has none)."""
        if path is None:
            path = self._newest_run()
            if path is None:
                if not quiet:
                    self.notify(f"no run of this session yet: train one "
                                f"({self._key('train.start')}) or pick one in Runs "
                                f"({self._key('app.runs')})", severity="warning")
                return
        if path == self.model_loading:
            return
        try:
            self.client.ensure(self.session)
            self.client.send(LoadRun(str(path)))
        except LlmlabError as e:
            self.notify(str(e), severity="error")
            return
        self.model_loading = str(path)
        self.notify(f"loading {path} …", timeout=3)

    def _newest_run(self) -> str | None:
        from core.runs import newest_run

        path = newest_run(self.session.resolve(self.session.train.runs_dir), self.session.name)
        return str(path) if path else None

    def action_pick_model(self) -> None:
        """Ask for a run folder or a compressed-model folder, and load it."""
        from core.runs import is_compressed_model, is_run_dir

        def accept(path: Path) -> str | None:
            if is_run_dir(path) or is_compressed_model(path):
                return None
            return f"{path}: not a run folder nor a compressed model (no run.json, no " \
                   "compressed.json)"

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.load_model(str(path))

        start = self.session.resolve(self.session.train.runs_dir)
        self.push_screen(PathPickerScreen("Load a run or a compressed model",
                                          start if start.is_dir() else Path.cwd(), pick="any",
                                          accept=accept), chosen)

    def _engine_replaced(self) -> None:
        """A fresh engine has no model: load the one the old engine had (or was loading)."""
        source = self.model_source or self.model_loading
        self.model_source = self.model_loading = None
        if source is not None:
            self.load_model(source, quiet=True)

    def on_load_model_request(self, message: LoadModelRequest) -> None:
        self.load_model(message.path)

    def on_engine_request(self, message: EngineRequest) -> None:
        """A pane's command for the engine's workbench."""
        try:
            if self.client.ensure(self.session):
                self._engine_replaced()
            self.client.send(message.command)
        except LlmlabError as e:
            self.notify(str(e), severity="error")

    def _engine_event_seen(self, event: msg.Event) -> None:
        """The app's record of the loaded model, kept before any pane hears of an event."""
        if isinstance(event, msg.ModelLoaded):
            self.model_source = event.source
            if self.model_loading == event.source:
                self.model_loading = None
        elif isinstance(event, msg.Error) and event.command == "LoadRun":
            self.model_loading = None

    def on_run_began(self, message: RunBegan) -> None:
        if title := self._title_bar():
            title.step = f"0/{message.event.max_steps}"

    def on_step_reported(self, message: StepReported) -> None:
        e = message.event
        if title := self._title_bar():
            title.step = f"{e.step}/{e.max_steps}"

    def on_hparam_applied(self, message: HparamApplied) -> None:
        self.live[message.event.name] = message.event.new

    def on_engine_warning(self, message: EngineWarning) -> None:
        self.notify(message.event.message, title="engine", severity="warning", timeout=8)

    def on_engine_failed(self, message: EngineFailed) -> None:
        text = message.event.message
        trace = message.event.details.get("traceback")
        if trace:  # a bug rather than a user error: keep the details for a report
            from tui.engine_client import engine_log_path

            path = engine_log_path()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a", encoding="utf-8") as log:
                    log.write(f"\n{text}\n{trace}\n")
                text += f" (details in {path})"
            except OSError:
                pass
        self.notify(text, title="engine error", severity="error", timeout=12)

    # ------------------------------------------------------------------ save / open

    def action_save(self) -> None:
        self.save(ask=False)

    def action_save_as(self) -> None:
        self.save(ask=True)

    def save(self, ask: bool) -> None:
        if self._problem_notice("save"):
            return
        if ask or is_shipped(self.session_path):
            self._ask_save_path()
        else:
            assert self.session_path is not None
            self.write_session(self.session_path)

    def _ask_save_path(self) -> None:
        here = (self.session_path.parent if self.session_path and not
                is_shipped(self.session_path) else Path.cwd())

        def chosen(path: Path | None) -> None:
            if path is None:
                return
            if path.suffix != ".toml":
                path = path.with_name(path.name + ".toml")
            if path.exists() and path.resolve() != (self.session_path or Path()).resolve():
                self.push_screen(ConfirmScreen(f"{path} exists. Replace it?", yes="replace",
                                               no="cancel"),
                                 lambda yes: self.write_session(path) if yes else None)
            else:
                self.write_session(path)

        def accept(path: Path) -> str | None:
            if is_shipped(path):
                return "that is inside the llmlab package; choose a folder of your own"
            return None

        self.push_screen(PathPickerScreen("Save the session as", here, pick="save",
                                          suffixes=(".toml",),
                                          initial=str(here / f"{self.session.name}.toml"),
                                          accept=accept), chosen)

    def _rebased(self, new_base: Path) -> Session:
        """The session as it must be written to a file in `new_base`: a relative corpus path
        (relative to the old folder) stays pointing at the same corpus."""
        session = copy.deepcopy(self.session)
        corpus = session.data.corpus
        if not corpus.startswith("sample:") and not Path(corpus).expanduser().is_absolute():
            target = self.session.resolve(corpus).resolve()
            try:
                session.data.corpus = str(target.relative_to(new_base))
            except ValueError:
                session.data.corpus = str(target)
        session.base_dir = new_base
        return session

    def write_session(self, path: Path) -> bool:
        path = Path(path).expanduser().resolve()
        session = self._rebased(path.parent)
        try:
            save_session(session, path)
        except OSError as e:
            self.notify(f"{path}: could not save ({e.strerror or e})", severity="error")
            return False
        self.session = session
        self.session_path = path
        self.saved = copy.deepcopy(session)
        self.saved_base = session.base_dir
        self.session_changed()
        self.notify(f"saved {path}", timeout=4)
        return True

    def action_open(self) -> None:
        if self.client.busy:
            self.notify(f"stop the training ({self._key('train.stop')}) before opening another "
                        "session",
                        severity="warning")
            return
        if self.dirty:
            self.push_screen(ConfirmScreen(f"Discard the unsaved edits to "
                                           f"'{self.session.name}'?", yes="discard",
                                           no="keep editing"),
                             lambda yes: self._pick_session() if yes else None)
        else:
            self._pick_session()

    def _pick_session(self) -> None:
        opened: dict[str, Session] = {}

        def accept(path: Path) -> str | None:
            try:
                opened["session"] = load_session(path)
            except SessionError as e:
                shown = e.problems[:3]
                more = len(e.problems) - len(shown)
                return "\n".join(shown) + (f"\n(and {more} more)" if more > 0 else "")
            except LlmlabError as e:
                return str(e)
            return None

        def chosen(path: Path | None) -> None:
            if path is not None and "session" in opened:
                self.open_session(opened["session"], path)

        here = (self.session_path.parent if self.session_path and not
                is_shipped(self.session_path) else Path.cwd())
        self.push_screen(PathPickerScreen("Open a session", here, pick="file",
                                          suffixes=(".toml",), accept=accept), chosen)

    def open_session(self, session: Session, path: Path | None) -> None:
        self.session = session
        self.session_path = Path(path).resolve() if path else None
        self.saved = copy.deepcopy(session)
        self.saved_base = session.base_dir
        self.form_errors = {}
        for row in self.query(FieldRow):
            row.clear_error()
        self.session_changed(force=True)
        self.train_pane.show_newest_run(session)
        self.notify(f"opened {path}", timeout=4)

    # ------------------------------------------------------------------ themes, help

    def _remember_theme(self, theme: Any) -> None:
        self.settings.theme = theme.name
        save_settings(self.settings)

    def help_groups(self) -> list[tuple[str, list[Binding]]]:
        palette = Binding(self.COMMAND_PALETTE_BINDING, "command_palette",
                          "Command palette: any action by name")
        focus = [Binding("enter", "", "Commit a value (in Generate: and generate)"),
                 Binding("tab", "", "Next field or control (after escape: back to the "
                                    "field left)"),
                 Binding("shift+tab", "", "Previous field or control")]
        return [
            ("Anywhere (not while typing in a field)",
             [*self.BINDINGS, palette]),  # type: ignore[list-item]
            ("Train pane", list(TrainPane.BINDINGS)),  # type: ignore[arg-type]
            ("Dataset pane", list(DatasetPane.BINDINGS)),  # type: ignore[arg-type]
            ("Prune pane", list(PrunePane.BINDINGS)),
            ("Generate pane", list(GeneratePane.BINDINGS)),
            ("Runs pane", list(RunsPane.BINDINGS)),
            ("Forms and dialogs (Model, Generate, the live edit)",
             [*FieldRow.BINDINGS, *NumberInput.BINDINGS,  # type: ignore[list-item]
              CycleSelect.BINDINGS[0], ModelPane.BINDINGS[0], *focus]),
            ("Dialogs", list(ConfirmScreen.BINDINGS)),  # type: ignore[arg-type]
        ]

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.help_groups()))

    def palette_commands(self) -> list[PaletteCommand]:
        c = PaletteCommand
        train = self.train_pane
        commands = [
            c("Go to Dataset", "corpus, tokenizer, statistics, preview",
              partial(self.show_pane, "dataset")),
            c("Go to Model", "the session form and the model's cost",
              partial(self.show_pane, "model")),
            c("Go to Train", "plots, progress and log of the run",
              partial(self.show_pane, "train")),
            c("Go to Prune", "prune and quantize the trained model",
              partial(self.show_pane, "prune")),
            c("Go to Generate", "sample text from the model", partial(self.show_pane, "generate")),
            c("Go to Runs", "every run: compare, resume, load, export",
              partial(self.show_pane, "runs")),
            c("Model: load the newest run", "for pruning, generating and the surprise view",
              partial(self.load_model, None)),
            c("Model: load a run or compressed-model folder…",
              "e.g. one written by the Prune pane (w): generate from it, prune it further",
              self.action_pick_model),
            c("Train: start", "start a new run of this session", self.action_start_training),
            c("Train: pause / resume", "", self.action_toggle_pause),
            c("Train: stop", "stop after this step, saving a checkpoint",
              self.action_stop_training),
            c("Train: learning rate x2", "now, in the running training",
              partial(self.action_scale_lr, 2.0)),
            c("Train: learning rate x0.5", "now, in the running training",
              partial(self.action_scale_lr, 0.5)),
            c("Train: edit a live hyperparameter", "lr, weight decay, grad clip, eval interval",
              self.action_edit_hparam),
            c("Train: keep the run's live values", "copy the lr etc. the run was changed to "
              "into the session (asks first)", self.action_keep_run_changes),
            c("Train: evaluate (val split)", "loss, perplexity, bits/char, top-1/5, macro-F1 "
              "over the whole val split", partial(self.action_evaluate, "val")),
            c("Train: evaluate (test split)", "the same over the whole test split",
              partial(self.action_evaluate, "test")),
            c("Plot: toggle smoothing", "TensorBoard's debiased EMA of the train loss",
              train.action_toggle_smoothing),
            c("Plot: toggle log scale", "logarithmic loss and lr axes",
              train.action_toggle_log_scale),
            c("Plot: learning rate / gradient norm", "what the Train pane's lower side plot "
              "shows", train.action_toggle_side_plot),
            c("Session: save", "write the session TOML (ctrl+s)", self.action_save),
            c("Session: save as", "write the session TOML to a new path", self.action_save_as),
            c("Session: open", "open a session TOML (ctrl+o)", self.action_open),
            c("Dataset: browse for a corpus", "a text file or a folder of them",
              self.dataset_pane.action_browse),
            c("Dataset: reload the corpus", "read and tokenize it again",
              self.dataset_pane.action_reload),
            c("Dataset: surprise heatmap on/off",
              "colour the preview by each token's loss under the model",
              self.dataset_pane.action_toggle_heatmap),
            c("Help: keys", "every key binding", self.action_help),
            c("Quit", "stops a running training first, with a checkpoint", self.action_quit),
        ]
        for pane_class in WORKBENCH_PANES:
            commands += self.query_one(pane_class).palette_commands()
        for path, _kind, meta in form_fields():
            live = " (live)" if meta.get("live") else ""
            commands.append(c(f"Field: {path}", meta.get("doc", "") + live,
                              partial(self.focus_field, path)))
        for name in self.llmlab_themes:
            commands.append(c(f"Theme: {name}", "colours; remembered for next time",
                              partial(setattr, self, "theme", name)))
        return commands

    # ------------------------------------------------------------------ quitting

    async def action_quit(self) -> None:
        if self._quitting:
            return
        reasons = []
        if self.client.busy:
            reasons.append("Training is running: it will stop and save a checkpoint.")
        if self.dirty:
            reasons.append("The session has unsaved edits.")
        if not reasons:
            await self.quit_cleanly()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self.quit_cleanly(), name="quit", exclusive=True)

        self.push_screen(ConfirmScreen("\n".join(reasons) + "\nQuit?", yes="quit",
                                       no="stay"), answered)

    async def quit_cleanly(self) -> None:
        """Stop the engine (a running training saves a checkpoint), wait for its process to
        end, then exit."""
        self._quitting = True
        if self.client.alive:
            self.query_one(TitleBar).state = "stopping"
            self.notify("stopping the engine, saving a checkpoint …", timeout=30)
            await self.client.shutdown()
        self.exit()

    def on_unmount(self) -> None:
        if hasattr(self, "_sighup_before"):
            import signal

            signal.signal(signal.SIGHUP, self._sighup_before)
        client = getattr(self, "client", None)
        if client is not None and client.alive:
            client.close(timeout=30)


def _detach_from_terminal() -> None:
    """Point stdin, stdout and stderr at /dev/null (the terminal is gone: writes to it fail)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def run_app(session_path: str | None = None) -> int:
    """`llmlab [SESSION.toml]`: the app, full screen; 2 with the problems for a bad file."""
    import sys

    session = None
    path = None
    if session_path is not None:
        path = Path(session_path)
        try:
            session = load_session(path)
        except LlmlabError as e:
            for line in (e.problems if isinstance(e, SessionError) else [str(e)]):
                print(line, file=sys.stderr)
            return 2
    LlmlabApp(session, path).run()
    return 0
