"""A Select that keeps the app's one keyboard scheme: the arrows move between fields, the nudge
keys (`+`/`-`) step to the next or previous choice, enter (or space) opens the list.

Textual's own Select opens its list on up/down too, so in a form the arrow that meant "next
field" opened a list instead; this one leaves up/down to the form.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.widgets import Select

from tui.keymap import bind


class CycleSelect(Select[Any], inherit_bindings=False):
    BINDINGS = [
        bind("form.open_choice", "show_overlay", "Open the list", show=False,
             help="A choice: open its list (up/down pick, enter takes it)"),
        bind("form.nudge_up", "cycle(1)", "Next choice", show=False,
             help="A choice: the next one"),
        bind("form.nudge_down", "cycle(-1)", "Previous choice", show=False,
             help="A choice: the previous one"),
    ]

    def __init__(self, options: Iterable[tuple[Any, Any]], *,
                 cycle: Iterable[Any] | None = None, **kwargs: Any) -> None:
        """`cycle`: the choices +/- step through, when not every one (a choice that opens a
        dialog is reached from the list only)."""
        options = list(options)
        super().__init__(options, **kwargs)
        self.choices = list(cycle) if cycle is not None else [value for _, value in options]
        self.cycled_to: Any = None  # the value the last +/- stepped to (not picked from the list)

    def action_cycle(self, direction: int) -> None:
        """The next (direction > 0) or previous choice, wrapping around."""
        if not self.choices or self.disabled:
            return
        try:
            index = self.choices.index(self.value)
        except ValueError:
            index = -1 if direction > 0 else 0
        self.cycled_to = self.choices[(index + direction) % len(self.choices)]
        self.value = self.cycled_to

    def picked_from_list(self, value: Any) -> bool:
        """Whether a `Changed` to `value` came from the list (enter on a choice) rather than
        from a +/- step: a dialog moves on to the next field after a pick only."""
        return value != self.cycled_to
