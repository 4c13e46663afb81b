"""An Input for a number field, nudged with `+`/`-` or the up/down arrows."""

from __future__ import annotations

from typing import Any

from textual import events
from textual.message import Message
from textual.widgets import Input

from tui.keymap import bind
from tui.nudge import format_number, nudge


class NumberInput(Input):
    """Typed like any Input; a step up or down with `+`/`-` or up/down.

    `-` and `+` are typed as text where they belong to a number: at the start of an empty
    field (a negative number) or right after an exponent's `e` (`1e-4`).
    """

    BINDINGS = [
        bind("form.nudge_up", "nudge(1)", "Step up", show=False,
             help="Number field: a step up (x2 for sizes and rates)"),
        bind("form.nudge_down", "nudge(-1)", "Step down", show=False,
             help="Number field: a step down (/2 for sizes and rates)"),
    ]

    class Nudged(Message):
        """The value was stepped (a committed change, unlike typing)."""

        def __init__(self, number_input: NumberInput, value: int | float) -> None:
            super().__init__()
            self.number_input = number_input
            self.value = value

        @property
        def control(self) -> NumberInput:
            return self.number_input

    def __init__(self, value: int | float, *, path: str, meta: dict[str, Any],
                 integer: bool, **kwargs: Any) -> None:
        super().__init__(format_number(value), compact=True, **kwargs)
        self.path = path
        self.meta = meta
        self.integer = integer

    def parse(self, text: str | None = None) -> int | float:
        """The number in the field; ValueError if it holds none."""
        text = (self.value if text is None else text).strip().replace("_", "")
        if self.integer:
            number = float(text)
            if not number.is_integer():
                raise ValueError(text)
            return int(number)
        return float(text)

    def _typed_sign(self, character: str) -> bool:
        before = self.value[: self.cursor_position]
        return (character == "-" and not before.strip()) or before[-1:] in ("e", "E")

    async def _on_key(self, event: events.Key) -> None:
        if event.character in ("+", "-") and not self._typed_sign(event.character):
            event.stop()
            event.prevent_default()
            self.action_nudge(1 if event.character == "+" else -1)
            return
        await super()._on_key(event)

    def action_nudge(self, direction: int) -> None:
        try:
            current = self.parse()
        except ValueError:
            self.app.bell()
            return
        new = nudge(self.path, current, direction, self.meta)
        if new == current:
            self.app.bell()
            return
        self.value = format_number(new)
        self.cursor_position = len(self.value)
        self.post_message(self.Nudged(self, new))
