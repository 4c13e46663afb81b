"""Quitting while a training job this app started is running: leave it, stop it, or stay."""

from __future__ import annotations

from typing import Literal

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.keymap import bind, keys

QuitChoice = Literal["leave", "stop"] | None


class QuitJobScreen(ModalScreen[QuitChoice]):
    BINDINGS = [
        bind("dialog.leave", "answer('leave')", "Leave it training"),
        bind("dialog.stop", "answer('stop')", "Stop it, with a checkpoint"),
        bind("dialog.no", "answer(None)", "Cancel"),
    ]

    def __init__(self, run_dir: str, extra: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.run_dir = run_dir
        self.extra = extra

    def compose(self) -> ComposeResult:
        leave, stop, no = (keys(f"dialog.{name}").split(",")[0]
                           for name in ("leave", "stop", "no"))
        with Vertical(classes="dialog"):
            yield Static(f"A training job started here is running:\n{self.run_dir}\n"
                         f"It can go on without the app (llmlab attach, or reopen the "
                         f"session, to watch it again).{self.extra}", classes="dialog-text",
                         markup=False)
            yield Static(f"[b]{leave}[/b] leave it training and quit    [b]{stop}[/b] stop it "
                         f"(checkpoint) and quit    [b]{no}[/b]/esc cancel",
                         classes="dialog-keys")

    def action_answer(self, answer: QuitChoice) -> None:
        self.dismiss(answer)
