"""The Generate pane (being built)."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from core.session import Session
from tui.commands import PaletteCommand
from tui.messages import EngineMessage


class GeneratePane(Vertical, can_focus=True):
    BINDINGS: ClassVar[list] = []
    # Engine messages this pane wants (the app subscribes it to them on mount).
    ENGINE_EVENTS: ClassVar[tuple[type[EngineMessage], ...]] = ()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def compose(self) -> ComposeResult:
        yield Static("Generate")

    def show_session(self, session: Session) -> None:
        """The session changed (or was opened): show its settings."""

    def palette_commands(self) -> list[PaletteCommand]:
        return []
