"""A yes/no question before something that loses work or stops a run."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.keymap import bind, keys


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        bind("dialog.yes", "answer(True)", "Yes"),
        bind("dialog.no", "answer(False)", "No"),
    ]

    def __init__(self, question: str, yes: str = "yes", no: str = "no") -> None:
        super().__init__(classes="dialog-screen")
        self.question = question
        self.yes = yes
        self.no = no

    def compose(self) -> ComposeResult:
        yes_key = keys("dialog.yes").split(",")[0]
        no_key = keys("dialog.no").split(",")[0]
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="dialog-text")
            yield Static(f"[b]{yes_key}[/b] {self.yes}    [b]{no_key}[/b]/esc {self.no}",
                         classes="dialog-keys")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
