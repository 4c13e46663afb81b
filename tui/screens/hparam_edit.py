"""Edit one live hyperparameter of the running training."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Select, Static

from core.session import LIVE_FIELDS
from tui.keymap import bind, key_display
from tui.nudge import format_number
from tui.widgets.cycle_select import CycleSelect


class HparamEditScreen(ModalScreen[tuple[str, float] | None]):
    """Pick a live field, type its new value, enter: dismissed with (name, value).

    The cursor starts on the parameter (so enter cannot apply before one is chosen): +/-
    step through them, enter opens the list; choosing one moves to its value, where enter
    applies. Up/down move between the two, as in every form.

    `check(name, value)` says why a value cannot be set (None: it can); the dialog then
    stays open with that line and the typed text."""

    AUTO_FOCUS = "#hparam-name"
    BINDINGS = [
        bind("dialog.close", "cancel", "Cancel"),
        bind("pane.next_field", "app.focus_next", "Next field", show=False),
        bind("pane.previous_field", "app.focus_previous", "Previous field", show=False),
    ]

    def __init__(self, current: dict[str, float], field: str = "optim.lr",
                 check: Callable[[str, float], str | None] | None = None,
                 running: bool = False) -> None:
        super().__init__(classes="dialog-screen")
        self.running = running  # a run goes: the change is the run's, not the session's
        self.current = current
        self.field = field
        self.check = check

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Change a live value of the run (from its next step; not the session)"
                         if self.running else "Edit a live hyperparameter of the session",
                         classes="dialog-title")
            yield CycleSelect([(name, name) for name in LIVE_FIELDS], value=self.field,
                              allow_blank=False, compact=True, id="hparam-name")
            yield Input(format_number(self.current.get(self.field, 0.0)), compact=True,
                        select_on_focus=False, id="hparam-value")
            yield Static("", id="hparam-error", classes="field-problem")
            yield Static("", id="hparam-keys", classes="dialog-keys", markup=False)

    def on_mount(self) -> None:
        up, down, close = (key_display(self.app, name) for name in (
            "form.nudge_up", "form.nudge_down", "dialog.close"))
        self.query_one("#hparam-keys", Static).update(
            f"{up}/{down} parameter · ↑/↓ field · enter in the value applies · {close} cancels")

    def on_select_changed(self, event: Select.Changed) -> None:
        if str(event.value) == self.field:
            return  # (the Select reports its first value on mount: no choice made)
        self.field = str(event.value)
        value = self.query_one("#hparam-value", Input)
        value.value = format_number(self.current.get(self.field, 0.0))
        if self.query_one(CycleSelect).picked_from_list(event.value):
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
