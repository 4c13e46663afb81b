"""One session field in a form: its name, an editor fitting its type, and its problem."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select, Static

from tui.keymap import bind
from tui.messages import FieldError, SessionEdited
from tui.nudge import format_number
from tui.widgets.cycle_select import CycleSelect
from tui.widgets.number_input import NumberInput


def format_value(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(format_number(v) if isinstance(v, (int, float)) else str(v)
                         for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_number(value)
    return str(value)


def _on_off(value: Any) -> str:
    return "on" if value else "off"


class FieldRow(Vertical):
    """Edits `path` (e.g. "model.n_layer"): Select for choices, Checkbox for booleans,
    NumberInput for numbers, Input for text and lists of numbers ("0.9, 0.1, 0.0").

    Posts `SessionEdited` for each valid value (final on enter, leaving the field, a nudge
    or a choice) and `FieldError` for text that is no value of the field.

    The keys are the app's one scheme: up/down go to the previous/next field (bound here,
    so that neither the scrolling form around the row nor the editor takes them), `+`/`-`
    step a number or a choice, enter commits, escape leaves (the pane's binding).
    """

    BINDINGS = [
        bind("pane.next_field", "app.focus_next", "Next field", show=False,
             help="A form or dialog: the next field"),
        bind("pane.previous_field", "app.focus_previous", "Previous field", show=False,
             help="A form or dialog: the previous field"),
    ]

    def __init__(self, path: str, kind: type, meta: dict[str, Any], value: Any,
                 label: str | None = None, id_prefix: str = "field",
                 problem_text: bool = True, zero_text: str | None = None) -> None:
        super().__init__(classes="field-row", id=f"{id_prefix}-{path.replace('.', '-')}")
        self.path = path
        self.kind = kind
        self.meta = meta
        self.label = label or path.rpartition(".")[2]
        self._initial = value
        self._error: str | None = None
        self._problem: str | None = None
        self._shown: str | None = ""  # what the problem line shows now
        self.problem_text = problem_text  # False: only the label turns red (a pane that
        # shows the message elsewhere)
        self._ready = False  # children mounted: before that, values are only remembered
        self.zero_text = zero_text  # a number field whose 0 means "off": what 0 shows as

    # ------------------------------------------------------------------ building

    def _editor(self) -> Widget:
        value, meta = self._initial, self.meta
        if meta.get("choices"):
            options = [(choice, choice) for choice in meta["choices"]]
            return CycleSelect(options, value=value, allow_blank=False, compact=True,
                               classes="field-editor")
        if self.kind is bool:
            return Checkbox(_on_off(value), value=bool(value), compact=True,
                            classes="field-editor")
        if self.kind in (int, float):
            return NumberInput(value, path=self.path, meta=meta, integer=self.kind is int,
                               zero_text=self.zero_text, classes="field-editor")
        # (select_on_focus off: arriving by arrow or tab never arms the next key to replace
        # the whole text)
        return Input(format_value(value), compact=True, select_on_focus=False,
                     classes="field-editor")

    def compose(self) -> ComposeResult:
        # One grid (label | editor, then the problem across both) keeps the widget count,
        # and so the cost of each relayout while typing, low.
        label = Label(self.label, classes="field-label")
        if self.meta.get("live"):
            label.add_class("-live")
        yield label
        editor = self._editor()
        editor.tooltip = self.meta.get("doc", "")
        yield editor
        yield Static("", classes="field-problem")

    def on_mount(self) -> None:
        self._ready = True
        self.set_value(self._initial, force=True)  # a value that came while mounting
        self._shown = ""
        self._show()

    @property
    def editor(self) -> Widget:
        return self.query_one(".field-editor")

    # ------------------------------------------------------------------ values

    def parse(self, text: str) -> Any:
        """The field's value from the editor's text; ValueError with a reason if none."""
        if self.kind is int or self.kind is float:
            editor = self.editor
            assert isinstance(editor, NumberInput)
            try:
                return editor.parse(text)
            except ValueError:
                kind = "a whole number" if self.kind is int else "a number"
                raise ValueError(f"must be {kind} (got {text.strip()!r})") from None
        if self.kind is list or getattr(self.kind, "__origin__", None) is list:
            parts = [p for p in text.replace(",", " ").split() if p]
            try:
                return [float(p) for p in parts]
            except ValueError:
                raise ValueError(f"must be numbers separated by commas (got {text!r})") from None
        return text

    def set_value(self, value: Any, force: bool = False) -> None:
        """Show `value` (from the session) without reporting it back as an edit. Text being
        typed (the editor has the focus) is left alone unless `force`."""
        if not self._ready:
            self._initial = value  # composed with it
            return
        editor = self.editor
        if editor.has_focus and not force and isinstance(editor, Input):
            return
        if isinstance(editor, Select):
            if editor.value != value:
                with editor.prevent(Select.Changed):
                    editor.value = value
        elif isinstance(editor, Checkbox):
            if editor.value != bool(value):
                with editor.prevent(Checkbox.Changed):
                    editor.value = bool(value)
                editor.label = _on_off(value)
        elif isinstance(editor, Input):
            try:
                same = self.parse(editor.value) == value
            except ValueError:
                same = False
            if not same:
                with editor.prevent(Input.Changed):
                    editor.value = (editor.text_of(value) if isinstance(editor, NumberInput)
                                    else format_value(value))
                self._set_error(None)

    def set_problem(self, problem: str | None) -> None:
        """The validator's message about this field (None: no problem)."""
        if problem != self._problem:
            self._problem = problem
            self._show()

    def clear_error(self) -> None:
        """Forget a typing error without reporting it (the session was replaced)."""
        self._error = None
        self._show()

    def _set_error(self, error: str | None) -> None:
        if error != self._error:
            self._error = error
            self.post_message(FieldError(self.path, error))
        self._show()

    def _show(self) -> None:
        text = self._error or self._problem
        if text == self._shown or not self._ready:
            return
        self._shown = text
        problem = self.query_one(".field-problem", Static)
        problem.update(f"✗ {text}" if text else "")
        problem.display = bool(text) and self.problem_text
        self.set_class(bool(text), "-invalid")

    # ------------------------------------------------------------------ events

    def _typed(self, text: str, final: bool) -> None:
        try:
            value = self.parse(text)
        except ValueError as e:
            self._set_error(str(e))
            return
        self._set_error(None)
        self.post_message(SessionEdited(self.path, value, final=final))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._typed(event.value, final=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._typed(event.value, final=True)

    def on_input_blurred(self, event: Input.Blurred) -> None:
        event.stop()
        self._typed(event.value, final=True)

    def on_number_input_nudged(self, event: NumberInput.Nudged) -> None:
        event.stop()
        self._set_error(None)
        self.post_message(SessionEdited(self.path, event.value, final=True))

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(SessionEdited(self.path, event.value, final=True))

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        event.checkbox.label = _on_off(event.value)
        self.post_message(SessionEdited(self.path, event.value, final=True))
