"""Edit one live hyperparameter of the running training."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Select, Static

from core.session import LIVE_FIELDS
from tui.keymap import bind
from tui.nudge import format_number


class HparamEditScreen(ModalScreen[tuple[str, float] | None]):
    """Pick a live field, type its new value, enter: dismissed with (name, value).

    `check(name, value)` says why a value cannot be set (None: it can); the dialog then
    stays open with that line and the typed text."""

    AUTO_FOCUS = "#hparam-value"
    BINDINGS = [bind("dialog.close", "cancel", "Cancel")]

    def __init__(self, current: dict[str, float], field: str = "optim.lr",
                 check: Callable[[str, float], str | None] | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self.current = current
        self.field = field
        self.check = check

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Change a live hyperparameter (applies at the next step)",
                         classes="dialog-title")
            yield Select([(name, name) for name in LIVE_FIELDS], value=self.field,
                         allow_blank=False, compact=True, id="hparam-name")
            yield Input(format_number(self.current.get(self.field, 0.0)), compact=True,
                        id="hparam-value")
            yield Static("", id="hparam-error", classes="field-problem")
            yield Static("enter applies · esc cancels", classes="dialog-keys")

    def on_select_changed(self, event: Select.Changed) -> None:
        self.field = str(event.value)
        value = self.query_one("#hparam-value", Input)
        value.value = format_number(self.current.get(self.field, 0.0))
        value.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        error = self.query_one("#hparam-error", Static)
        try:
            value = float(event.value)
        except ValueError:
            error.update(f"must be a number (got {event.value!r})")
            error.display = True
            return
        problem = self.check(self.field, value) if self.check else None
        if problem:
            error.update(f"{self.field}: {problem}")
            error.display = True
            return
        self.dismiss((self.field, value))

    def action_cancel(self) -> None:
        self.dismiss(None)
