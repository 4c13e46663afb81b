"""What every pane is: the one contract between the app and its panes.

A pane says who it is (`KEY`, `TITLE`, `ABOUT`), which keys it has (`BINDINGS`: the help
screen lists them), which engine events it wants (`ENGINE_EVENTS`: core.messages event
types, each handed to `engine_event`), how it shows the session (`show_session`) and which
commands it adds to the palette (`palette_commands`). The app builds itself from the registry
in `tui/panes/__init__.py`: compose, switching, the title bar,
the palette's "Go to", the help screen and the engine subscriptions.

State flows down, messages go up. The app state a pane reads (the session path, the loaded
model, the engine's state, whether a run is busy) is a reactive of the pane that the app binds
to its own (`data_bind`): a pane reads `self.model_source`, never an app attribute. A pane
asks the app for something with a message (`Pane.Show`, `tui.messages.EngineRequest`, ...),
and never imports `tui.app`.

Each pane's styles are in a .tcss file beside its module (`generate.py` -> `generate.tcss`).

A pane is `LAZY` unless it says otherwise: it is mounted at start (an empty container: its
reactives are bound, `app.query_one` finds it), but the widgets its `compose` makes are
mounted only when it is first shown or used (`build`), so the first screen does not wait for
the panes nobody looks at yet. Until then the app does not call its `show_session`, and the
engine events it subscribed to are kept and handed to `engine_event` in order once it is built;
what a pane does with its widgets right after they are mounted goes in `widgets_mounted` (a
lazy pane's `on_mount` runs before they exist). A pane that must keep up from the start
(the Train pane follows a run while another pane shows) sets `LAZY = False`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual.containers import Vertical
from textual.message import Message
from textual.reactive import var
from textual.widget import Widget

from core.values import EngineState
from tui.keymap import key_display, keys
from tui.messages import EngineEvent

if TYPE_CHECKING:
    from core.messages import Event
    from core.session import Session
    from tui.commands import PaletteCommand
    from tui.document import SessionDocument


class Pane(Vertical, can_focus=True):
    KEY: ClassVar[str]  # the default key that shows the pane ("d"); a keymap may move it
    TITLE: ClassVar[str]  # its name in the title bar, the palette and the help ("Dataset")
    ABOUT: ClassVar[str] = ""  # what is in it, in a few words, for the palette and the help
    WANTS_MODEL: ClassVar[bool] = False  # shown, it has the app load the session's newest run
    # The engine events (core.messages types) the pane wants: the app subscribes it to them
    # on mount, and each arrives at `engine_event`.
    ENGINE_EVENTS: ClassVar[tuple[type[Event], ...]] = ()
    # Its widgets are mounted at its first show or use (`build`), not at the app's start.
    LAZY: ClassVar[bool] = True

    # App state, bound to the app's reactives of the same names (data_bind in the app's
    # compose): set by the app, read here.
    session_path: var[Path | None] = var(None)  # the session's file (also `doc.path`)
    model_source: var[str | None] = var(None)  # the run / compressed model the engine has
    model_loading: var[str | None] = var(None)  # a model asked for and not loaded yet
    model_request: var[int] = var(0)  # the request id of the app's last LoadRun (0: none)
    engine_state: var[EngineState] = var(EngineState.IDLE)
    busy: var[bool] = var(False)  # a training run goes (preparing, running, paused, stopping)
    engine_id: var[int] = var(0)  # which engine process: a new one has forgotten all requests

    class Show(Message):
        """A pane asks the app to show a pane (by its `pane_name()`)."""

        def __init__(self, pane: str) -> None:
            super().__init__()
            self.pane = pane

    def __init__(self, doc: SessionDocument, **kwargs: Any) -> None:
        kwargs.setdefault("id", self.pane_name())
        super().__init__(**kwargs)
        self.doc = doc  # the app's one document: `doc.session` is always the current session
        self.built = not self.LAZY  # its widgets are mounted (a LAZY one's: at `build`)
        self._unmounted: list[Widget] = []  # what compose made, until `build` mounts it
        self._held: list[Event] = []  # the engine events that came before `build`
        self._build_lock = asyncio.Lock()
        # Set while none of its widgets are being mounted (before `build` and after it):
        # quitting waits for it (a Select mounted while the app closes fails inside Textual).
        self.settled = asyncio.Event()
        self.settled.set()

    @property
    def session(self) -> Session:
        return self.doc.session

    @classmethod
    def pane_name(cls) -> str:
        """The pane's id, its binding id (`app.<name>`) and its name in messages: the title,
        lower case."""
        return cls.TITLE.lower()

    @classmethod
    def css_path(cls) -> Path | None:
        """The pane's .tcss beside its module, if it has one."""
        module = sys.modules[cls.__module__]
        path = Path(module.__file__ or "").with_suffix(".tcss")
        return path if path.is_file() else None

    async def mount_composed_widgets(self, widgets: list[Widget]) -> None:
        """(Textual's hook after `compose`.) A LAZY pane keeps its widgets until `build`."""
        if self.built:
            await super().mount_composed_widgets(widgets)
        else:
            self._unmounted = widgets

    async def build(self) -> None:
        """Mount the widgets of a pane not shown before (nothing if they are), then show it
        the session and hand it the engine events that came meanwhile, in order: it is
        where it would be had it been built from the start."""
        if self.built:
            return
        self.settled.clear()
        try:
            async with self._build_lock:  # (two keys in a row: one build)
                if not self.built:
                    await self._mount_widgets()
        finally:
            self.settled.set()

    async def _mount_widgets(self) -> None:
        widgets, self._unmounted = self._unmounted, []
        await self.mount_all(widgets)
        self.built = True
        await self.widgets_mounted()
        self.show_session(self.doc, force=True)
        held, self._held = self._held, []
        for event in held:
            self.engine_event(event)

    async def widgets_mounted(self) -> None:
        """The pane's widgets were just mounted (by `build`, before the pane is shown): set
        them up, as a widget usually does in `on_mount`."""

    def show_session(self, doc: SessionDocument, force: bool = False) -> None:
        """The session changed (an edit here or elsewhere, a file saved or opened): show it.
        `force`: also over text being typed (a session replaced as a whole)."""

    def on_engine_event(self, message: EngineEvent) -> None:
        if self.built:
            self.engine_event(message.event)
        else:
            self._held.append(message.event)

    def engine_event(self, event: Event) -> None:
        """An engine event of a type in `ENGINE_EVENTS`. An answer carries the request id of
        the command it answers (`event.request_id`): a pane keeps the ids of the commands it
        sent, and tells its own answers from other panes' by them."""

    def palette_commands(self) -> list[PaletteCommand]:
        """The pane's own commands in the palette (ctrl+p), besides its "Go to"."""
        return []

    def _key(self, binding_id: str) -> str:
        """A binding's first key as the user's keymap has it ("^r", "h"), for hints that
        name it."""
        try:
            return key_display(self.app, binding_id)
        except Exception:  # not in an app yet
            return keys(binding_id).split(",")[0]

    def how_to_load(self, verb: str = "open", where: str = "Runs",
                    then_open: bool = True) -> str:
        """How to get a model when none is loaded: the one hint every pane words alike,
        `verb`, `where` and `then_open` keeping each pane's own phrasing."""
        runs = self._key("app.runs")
        if then_open:
            runs = f"{runs}, then {self._key('runs.open')}"
        return f"train one ({self._key('train.start')}), or {verb} a run in {where} ({runs})"

    async def shown(self) -> None:
        """The pane has just become the one on screen (built: redraw, build what waits)."""
