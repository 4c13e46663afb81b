"""An Input for a number field, nudged with `+`/`-` (the keymap's `form.nudge_up`/`nudge_down`).

The arrows are not nudges: up/down move between fields everywhere (one scheme), so a number
field is never stepped by a key that meant "next field"."""

from __future__ import annotations

from typing import Any

from textual import events
from textual.message import Message
from textual.widgets import Input

from tui.keymap import bind, current_keys
from tui.nudge import format_number, nudge


class NumberInput(Input):
    """Typed like any Input; a step up or down with the nudge keys (`+`/`-`).

    `-` and `+` are typed as text where they belong to a number: at the start of an empty
    field (a negative number) or right after an exponent's `e` (`1e-4`). A field whose 0 means
    "off" (`zero_text`, e.g. "no cap") shows 0 as that placeholder and reads an empty field as 0.
    """

    BINDINGS = [
        bind("form.nudge_up", "nudge(1)", "Step up", show=False,
             help="Number field: a step up (x2 for sizes and rates); a choice: the next"),
        bind("form.nudge_down", "nudge(-1)", "Step down", show=False,
             help="Number field: a step down (/2 for sizes and rates); a choice: the previous"),
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
                 integer: bool, zero_text: str | None = None, **kwargs: Any) -> None:
        self.zero_text = zero_text
        if zero_text is not None:
            kwargs.setdefault("placeholder", zero_text)
        # (select_on_focus off: arriving in a field by arrow or tab never arms the next key
        # to replace the whole value)
        super().__init__(self.text_of(value), compact=True, select_on_focus=False, **kwargs)
        self.path = path
        self.meta = meta
        self.integer = integer

    def text_of(self, value: int | float) -> str:
        """`value` as the field shows it ("" for 0 in a field with a `zero_text`)."""
        return "" if self.zero_text is not None and value == 0 else format_number(value)

    def parse(self, text: str | None = None) -> int | float:
        """The number in the field; ValueError if it holds none."""
        text = (self.value if text is None else text).strip().replace("_", "")
        if not text and self.zero_text is not None:
            return 0
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
        """A nudge key that is a printable character (`+`, `-`) is not typed: it goes on to
        the bindings, unless it is a sign that belongs to the number being typed."""
        nudge_keys = current_keys(self.app, "form.nudge_up") | current_keys(
            self.app, "form.nudge_down")
        if event.key in nudge_keys and not (
                event.character in ("+", "-") and self._typed_sign(event.character)):
            event.prevent_default()  # (Input's handler would type it; the event bubbles on)
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
        self.value = self.text_of(new)
        self.cursor_position = len(self.value)
        self.post_message(self.Nudged(self, new))
