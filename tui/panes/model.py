"""The Model pane: a form for every field of [data], [model], [optim] and [train], the
validator's problems next to their fields, and a live summary of what the model costs."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, get_type_hints

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Label, Static

from core.session import (
    DataConfig,
    ModelConfig,
    OptimConfig,
    Session,
    TrainConfig,
    field_applies,
    field_doc,
    get_field,
)
from tui.document import SessionDocument
from tui.keymap import bind
from tui.panes.base import Pane
from tui.widgets.field_row import FieldRow
from tui.widgets.model_summary import ModelSummary

SECTIONS: tuple[tuple[str, type], ...] = (
    ("data", DataConfig), ("model", ModelConfig), ("optim", OptimConfig),
    ("train", TrainConfig))

PER_RUN = ("data.fold",)  # set for each fold's run by `llmlab train` (core.folds), not edited


def form_fields() -> list[tuple[str, type, dict[str, Any]]]:
    """(dotted path, type, metadata) of every field the form edits, in file order."""
    name_meta = {**Session.__dataclass_fields__["name"].metadata}
    out: list[tuple[str, type, dict[str, Any]]] = [("name", str, name_meta)]
    for section, cls in SECTIONS:
        hints = get_type_hints(cls)
        for f in fields(cls):
            if f"{section}.{f.name}" in PER_RUN:
                continue
            kind = hints[f.name]
            kind = list if getattr(kind, "__origin__", None) is list else kind
            out.append((f"{section}.{f.name}", kind, field_doc(f"{section}.{f.name}")))
    return out




class ModelPane(Pane):
    """The keys inside the form are FieldRow's (up/down between fields, +/- nudge); the pane
    adds escape (leave the field, so single keys work) and, once left, the way back: tab or
    an arrow returns to the field that was left, not to the top of the form."""

    KEY = "m"
    TITLE = "Model"
    ABOUT = "the session form and what the model costs"

    BINDINGS = [
        bind("pane.leave_field", "leave_field", "Leave field",
             help="Leave the field being edited (single keys work again)"),
        bind("pane.next_field", "return_to_field", "Back to the field", show=False),
        bind("pane.previous_field", "return_to_field", "Back to the field", show=False),
        Binding("tab", "return_to_field", "Back to the field", show=False),
    ]

    def __init__(self, doc: SessionDocument, **kwargs: Any) -> None:
        super().__init__(doc, **kwargs)
        self._rows: dict[str, FieldRow] = {}
        self.last_field: str | None = None  # the field the cursor was in last
        self._summary: tuple[Any, ...] | None = None  # show_summary's figures, until shown

    def compose(self) -> ComposeResult:
        yield VerticalScroll(id="form", can_focus=False)
        with Vertical(id="summary-panel"):
            yield ModelSummary(id="model-summary")
            yield Static("", id="field-help")

    async def build_form(self) -> None:
        """Mount the form's fields (~250 widgets: at the pane's first show, see Pane.build)."""
        widgets: list[Label | FieldRow] = []
        section = ""
        for path, kind, meta in form_fields():
            head = path.split(".")[0] if "." in path else "session"
            if head != section:
                section = head
                widgets.append(Label(f"[{head}]" if head != "session" else "session",
                                     classes="form-section", markup=False))
            row = FieldRow(path, kind, meta, get_field(self.session, path))
            self._rows[path] = row
            widgets.append(row)
        await self.query_one("#form", VerticalScroll).mount_all(widgets)

    def rows(self) -> dict[str, FieldRow]:
        return self._rows

    def show_session(self, doc: SessionDocument, force: bool = False) -> None:
        session, problems = doc.session, doc.problems
        for path, row in self._rows.items():
            row.set_value(get_field(session, path), force=force)
            row.set_problem(problems.get(path))
            row.display = field_applies(session, path)  # (no n_head for an lstm)

    def show_summary(self, vocab_size: int | None, train_tokens: int | None,
                     n_problems: int, memory_problem: str | None = None) -> None:
        self._summary = (vocab_size, train_tokens, n_problems, memory_problem)
        if self.built:
            self.query_one(ModelSummary).show(self.session, *self._summary)

    async def widgets_mounted(self) -> None:
        if self._summary is not None:
            self.show_summary(*self._summary)
        await self.build_form()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        node = event.widget
        while node is not None and not isinstance(node, FieldRow):
            node = node.parent
        help_text = self.query_one("#field-help", Static)
        if node is None:
            help_text.update("")
            return
        self.last_field = node.path
        meta = node.meta
        lines = [f"{node.path}", meta.get("doc", "")]
        if meta.get("choices"):
            lines.append(" | ".join(meta["choices"]))
        if meta.get("live"):
            lines.append("live: changes apply to a running training")
        help_text.update("\n".join(lines))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave_field":
            return self.screen.focused is not self
        if action == "return_to_field":  # (in a field, tab and the arrows are the form's)
            return self.screen.focused is self and bool(self._rows)
        return True

    def action_return_to_field(self) -> None:
        """Back into the form at the field left with escape (the first one if none was)."""
        row = self._rows.get(self.last_field or "")
        if row is None or not row.display:
            row = next((r for r in self._rows.values() if r.display), None)
        if row is not None:
            row.editor.focus()

    def action_leave_field(self) -> None:
        self.focus()
