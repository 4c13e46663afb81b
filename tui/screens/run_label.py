"""Name a run and write notes on it (kept in its run.json by the Runs pane)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from tui.keymap import bind


class RunLabelScreen(ModalScreen[tuple[str, str] | None]):
    """Two fields, the name and the notes: enter keeps both (dismissed with (name, notes)),
    esc leaves them as they were (None); up/down or tab move between the fields."""

    AUTO_FOCUS = "#run-name"
    BINDINGS = [
        bind("dialog.close", "cancel", "Cancel"),
        bind("pane.next_field", "app.focus_next", "Next field", show=False),
        bind("pane.previous_field", "app.focus_previous", "Previous field", show=False),
    ]

    def __init__(self, run: str, name: str = "", notes: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.run = run
        self.run_name = name
        self.run_notes = notes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"Name and notes of {self.run}", classes="dialog-title")
            yield Static("name", classes="dialog-label")
            yield Input(self.run_name, placeholder="e.g. lr 3e-3, wider", compact=True,
                        id="run-name")
            yield Static("notes", classes="dialog-label")
            yield Input(self.run_notes, placeholder="what this run tried", compact=True,
                        id="run-notes")
            yield Static("enter keeps · esc cancels · ↑↓ field", classes="dialog-keys")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss((self.query_one("#run-name", Input).value,
                      self.query_one("#run-notes", Input).value))

    def action_cancel(self) -> None:
        self.dismiss(None)
