"""The Generate pane's sampling controls: temperature, top-k, top-p, max tokens, seed, and the
model to generate from, in one compact row.

The numbers are the session's `[generate]` fields. A value is committed (posted as
`SessionEdited`, final) on enter, a nudge (+/-) or leaving the field after typing in it; it is
checked as the session checks it first, and a bad one is not sent: the row keeps it and
`problem` names it in one line (`ProblemChanged`). Enter on a good value goes on to the pane,
which generates (enter generates from any field of the pane, as in the prompt).
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Label, Select

from core.errors import SessionError
from core.session import GenerateConfig, field_doc, session_from_dict
from tui.messages import SessionEdited
from tui.nudge import format_number
from tui.widgets.cycle_select import CycleSelect
from tui.widgets.number_input import NumberInput

# (field of [generate], label, whole number)
FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("temperature", "temp", False),
    ("top_k", "top-k", True),
    ("top_p", "top-p", False),
    ("max_tokens", "max", True),
    ("seed", "seed", True),
)
MODELS = ("dense", "compressed")


def check_value(name: str, value: int | float) -> str | None:
    """The session's own check of one `[generate]` field: its problem line, or None."""
    try:
        session_from_dict({"generate": {name: value}})
    except SessionError as e:
        return e.problems[0]
    return None


class GenerateControls(Horizontal):
    class ProblemChanged(Message):
        """The first problem of the row changed (None: every value is fine)."""

        def __init__(self, problem: str | None) -> None:
            super().__init__()
            self.problem = problem

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problems: dict[str, str] = {}  # field -> its problem line
        self._typed: set[str] = set()  # fields edited since they were last committed or set
        self._shown: dict[str, int | float] = {f: getattr(GenerateConfig(), f)
                                               for f, _, _ in FIELDS}

    def compose(self) -> ComposeResult:
        for name, label, integer in FIELDS:
            meta = field_doc(f"generate.{name}")
            yield Label(label, classes="generate-label")
            editor = NumberInput(self._shown[name], path=f"generate.{name}", meta=meta,
                                 integer=integer, id=f"generate-{name.replace('_', '-')}",
                                 classes="generate-number")
            editor.tooltip = f"generate.{name}: {meta['doc']}"
            yield editor
        yield CycleSelect([(m, m) for m in MODELS], value="dense", allow_blank=False,
                          compact=True, id="generate-model", tooltip="the model to generate from")

    # ------------------------------------------------------------------ reading, showing

    def editor(self, name: str) -> NumberInput:
        return self.query_one(f"#generate-{name.replace('_', '-')}", NumberInput)

    @property
    def problem(self) -> str | None:
        return next(iter(self.problems.values()), None)

    def read(self, name: str) -> int | float:
        """The field's value as typed; ValueError with its problem line if it is not one."""
        editor = self.editor(name)
        try:
            value = editor.parse()
        except ValueError:
            kind = "a whole number" if editor.integer else "a number"
            raise ValueError(f"generate.{name}: must be {kind} "
                             f"(got {editor.value.strip()!r})") from None
        problem = check_value(name, value)
        if problem:
            raise ValueError(problem)
        return value

    def values(self) -> dict[str, int | float]:
        """Every field's value; ValueError with the first problem's line."""
        return {name: self.read(name) for name, _, _ in FIELDS}

    def show_values(self, generate: GenerateConfig) -> None:
        """Show the session's values, without reporting them back; a field being typed in
        keeps its text."""
        for name, _, _ in FIELDS:
            value = getattr(generate, name)
            self._shown[name] = value
            editor = self.editor(name)
            if editor.has_focus and name in self._typed:
                continue
            if editor.value != format_number(value):
                with editor.prevent(Input.Changed):
                    editor.value = format_number(value)
            self._typed.discard(name)
            self._set_problem(name, None)

    def show_model(self, model: str) -> None:
        select = self.query_one("#generate-model", Select)
        if select.value != model:
            with select.prevent(Select.Changed):
                select.value = model

    # ------------------------------------------------------------------ editing

    def _name_of(self, widget: Any) -> str | None:
        if isinstance(widget, NumberInput) and widget.path.startswith("generate."):
            return widget.path.partition(".")[2]
        return None

    def _set_problem(self, name: str, problem: str | None) -> None:
        before = self.problem
        if problem:
            self.problems[name] = problem
        else:
            self.problems.pop(name, None)
        if self.problem != before:
            self.post_message(self.ProblemChanged(self.problem))

    def _check(self, name: str) -> int | float | None:
        try:
            value = self.read(name)
        except ValueError as e:
            self._set_problem(name, str(e))
            return None
        self._set_problem(name, None)
        return value

    def commit(self, name: str) -> bool:
        """Send the field's value to the session if it is a good one; False if it is not."""
        value = self._check(name)
        if value is None:
            return False
        self._typed.discard(name)
        if value != self._shown[name]:
            self._shown[name] = value
            self.post_message(SessionEdited(f"generate.{name}", value, final=True))
        return True

    def commit_all(self) -> bool:
        return all([self.commit(name) for name, _, _ in FIELDS])

    def on_input_changed(self, event: Input.Changed) -> None:
        name = self._name_of(event.input)
        if name is None:
            return
        event.stop()
        self._typed.add(name)
        self._check(name)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        name = self._name_of(event.input)
        if name is None:
            return
        if not self.commit(name):
            event.stop()  # (a bad value: its problem shows, nothing is generated)

    def on_number_input_nudged(self, event: NumberInput.Nudged) -> None:
        name = self._name_of(event.number_input)
        if name is not None:
            event.stop()
            self.commit(name)

    def on_descendant_blur(self, event: Any) -> None:
        name = self._name_of(event.widget)
        if name is not None and name in self._typed:
            self.commit(name)
