"""The Generate pane's prompt: one line, where a line break is written `\\n`.

A session's prompt may hold line breaks (a TOML string can), and a pasted prompt often does; a
one-line Input shows each as the two characters `\\n`, so enter stays free to generate.
"""

from __future__ import annotations

from typing import Any

from textual import events
from textual.widgets import Input

BREAK = "\\n"


def to_line(prompt: str) -> str:
    """The prompt as the field shows it."""
    return prompt.replace("\r\n", "\n").replace("\n", BREAK)


def from_line(line: str) -> str:
    """The prompt a field's text stands for."""
    return line.replace(BREAK, "\n")


class PromptInput(Input):
    def __init__(self, prompt: str = "", **kwargs: Any) -> None:
        super().__init__(to_line(prompt), compact=True, select_on_focus=False, **kwargs)

    @property
    def prompt(self) -> str:
        return from_line(self.value)

    def show_prompt(self, prompt: str) -> None:
        """Show `prompt` without reporting it as typed."""
        if self.prompt != prompt:
            with self.prevent(Input.Changed):
                self.value = to_line(prompt)
                self.cursor_position = len(self.value)

    def _on_paste(self, event: events.Paste) -> None:
        """Keep every line of a pasted text (Input's own paste keeps the first only)."""
        if event.text:
            line = to_line(event.text)
            selection = self.selection
            if selection.is_empty:
                self.insert_text_at_cursor(line)
            else:
                self.replace(line, *selection)
        event.stop()
        event.prevent_default()  # (Input's own handler would paste the first line again)
