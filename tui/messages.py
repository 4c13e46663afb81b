"""The app's own messages: what widgets tell the app, and engine events as Textual messages.

Widgets never call the engine or edit the session themselves: a form control posts
`SessionEdited`, the Dataset pane posts `CorpusLoaded`, and the engine bridge
(`tui.engine_client`) posts each `core.messages` event as one `EngineEvent` carrying it.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message

from core import messages as msg


class SessionEdited(Message):
    """A form control changed a session field.

    `final` is False while a value is being typed and True once it is committed (enter, leaving
    the field, a nudge, a choice): live changes reach a running training only when final, so
    typing "3e-4" never sends a learning rate of 3.
    """

    def __init__(self, path: str, value: Any, final: bool = True) -> None:
        super().__init__()
        self.path = path
        self.value = value
        self.final = final


class FieldError(Message):
    """A form control holds text that is not a value of its field (None: it is fine again)."""

    def __init__(self, path: str, error: str | None) -> None:
        super().__init__()
        self.path = path
        self.error = error


class CorpusLoaded(Message):
    """The corpus of the session's [data] was read; `view` is a tui.panes.dataset.CorpusView."""

    def __init__(self, view: Any) -> None:
        super().__init__()
        self.view = view


class CorpusFailed(Message):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message


class CorpusProgress(Message):
    def __init__(self, phase: str, fraction: float) -> None:
        super().__init__()
        self.phase = phase
        self.fraction = fraction


class EngineRequest(Message):
    """A pane asks the app to send `command` to the engine (starting the engine if needed).

    Panes never hold the engine bridge: the app owns it, and knows which model is loaded.
    """

    def __init__(self, command: msg.Command) -> None:
        super().__init__()
        self.command = command


class LoadModelRequest(Message):
    """A pane asks the app to load a run (or a compressed model) into the engine's workbench
    for the Prune and Generate panes and the surprise heatmap; `path` None: the newest run of
    the session."""

    def __init__(self, path: str | None = None) -> None:
        super().__init__()
        self.path = path


class ResumeRunRequest(Message):
    """The Runs pane asks the app to resume training a run from its latest checkpoint, or,
    `fresh`, to start a new run from its frozen session (a run with no checkpoint)."""

    def __init__(self, path: str, fresh: bool = False) -> None:
        super().__init__()
        self.path = path
        self.fresh = fresh


class ResumeFoldsRequest(Message):
    """The Runs pane asks the app to continue the folds of a cross-validation group (their
    run folders) that stopped before they finished."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__()
        self.paths = paths


# --------------------------------------------------------------------------- engine events


class EngineEvent(Message):
    """An event from the engine, as it came: `event` is the core.messages dataclass, under
    its one name (a pane asks `isinstance(message.event, msg.ModelLoaded)`, not for a Textual
    alias). The bridge posts it to the app and a copy to each pane whose `ENGINE_EVENTS` name
    its type (`EngineClient.subscribe`)."""

    def __init__(self, event: msg.Event) -> None:
        super().__init__()
        self.event = event
