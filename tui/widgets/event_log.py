"""The Train pane's log of run events, warnings and errors."""

from __future__ import annotations

from typing import Any

from rich.style import Style
from rich.text import Text
from textual.color import Color, ColorParseError
from textual.widgets import RichLog


class EventLog(RichLog):
    """A RichLog that also keeps its lines as plain text (`texts`), for tests and export."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_lines=500, wrap=True, markup=False, auto_scroll=True, **kwargs)
        self.texts: list[str] = []

    def _style(self, variable: str) -> Style:
        try:
            color = Color.parse(self.app.theme_variables.get(variable, "red"))
        except ColorParseError:
            return Style(bold=True)
        return Style(color=color.rich_color, bold=True)

    def add(self, text: str, level: str = "info") -> None:
        self.texts.append(text)
        if level == "info":
            self.write(Text(text))
        else:
            self.write(Text(f"{level}: {text}", style=self._style(level)))
