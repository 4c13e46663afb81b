"""Every key the app knows, as the user's keymap has them now."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.keymap import bind


def _display(app, binding: Binding) -> str:
    key = app._keymap.get(binding.id, binding.key) if binding.id else binding.key
    shown = []
    for k in key.split(","):
        k = k.strip()
        shown.append(app.get_key_display(Binding(k, "")) or k)
    return ", ".join(shown)


def key_table(app, groups: list[tuple[str, list[Binding]]]) -> Content:
    lines: list[Content] = []
    for title, bindings in groups:
        lines.append(Content.assemble((title, "bold $primary")))
        for b in bindings:
            if not b.description:
                continue
            lines.append(Content.assemble((f"  {_display(app, b):<12}", "$accent"),
                                          b.tooltip or b.description))
        lines.append(Content(""))
    return Content("\n").join(lines)


class HelpScreen(ModalScreen[None]):
    """The list scrolls at once: it has the focus from the start, so up/down, page up/down,
    home and end move it (at 80x24 it shows only part of the keys)."""

    AUTO_FOCUS = "#help-keys"
    BINDINGS = [
        bind("dialog.close", "dismiss_help", "Close"),
        Binding("question_mark,q", "dismiss_help", "Close", show=False),
    ]

    def __init__(self, groups: list[tuple[str, list[Binding]]]) -> None:
        super().__init__(classes="dialog-screen")
        self.groups = groups

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="help-dialog"):
            yield Static("Keys  (↑/↓ PgUp/PgDn scroll · esc closes · ctrl+p finds any action)",
                         classes="dialog-title")
            with VerticalScroll(id="help-keys"):
                yield Static(key_table(self.app, self.groups), id="help-table")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
