"""An engine in the test's own process, and the events it emits, in order."""

from __future__ import annotations

import queue
from collections.abc import Callable

from core import messages as msg
from core.engine import Engine
from core.session import Session

Hook = Callable[[Engine, msg.Event], None]  # called with each event as it is emitted


def recording_engine(session: Session, hook: Hook | None = None,
                     commands: queue.Queue | None = None) -> tuple[Engine, list[msg.Event]]:
    """An Engine on `session` (reading `commands`, if given) and the list it appends every
    event it emits to; `hook(engine, event)` is called after each is appended."""
    events: list[msg.Event] = []
    engine: Engine

    def emit(event: msg.Event) -> None:
        events.append(event)
        if hook is not None:
            hook(engine, event)

    engine = Engine(session, emit, commands) if commands is not None else Engine(session, emit)
    return engine, events


def of(events: list[msg.Event], cls: type) -> list:
    """The events of type `cls`, in order."""
    return [e for e in events if isinstance(e, cls)]
