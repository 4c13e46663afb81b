"""The top line: the panes (the current one highlighted, each with its key), the session,
and the engine state.

A pane's key is shown as an underlined letter of its name when it is one (Dataset, Model ...:
the default keys), else in brackets after it; the footer keeps its room for the pane's own
keys."""

from __future__ import annotations

from typing import Any

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from tui.text import middle_ellipsis


def fit(text: str, room: int, least: int = 4) -> str:
    """`text` in `room` cells, but never fewer than `least` (a name stays recognisable)."""
    return middle_ellipsis(text, max(room, least))


class TitleBar(Widget):
    pane: reactive[str] = reactive("")  # the name of the pane shown
    session_name: reactive[str] = reactive("")
    dirty: reactive[bool] = reactive(False)
    state: reactive[str] = reactive("idle")
    step: reactive[str] = reactive("")
    waiting: reactive[bool] = reactive(False)  # a training stands still for workbench work
    help_key: reactive[str] = reactive("?")
    pane_keys: reactive[dict[str, str]] = reactive(dict)  # pane -> its key, as displayed

    def __init__(self, panes: list[tuple[str, str]], **kwargs: Any) -> None:
        """`panes`: (name, title) of each pane, in the order shown."""
        super().__init__(**kwargs)
        self.panes = panes
        self.set_reactive(TitleBar.pane, panes[0][0] if panes else "")  # (shown first)

    def _pane_title(self, pane: str, title: str, style: str,
                    short: bool = False) -> list[str | tuple[str, str]]:
        """The pane's name with its key underlined (`short`: the key alone)."""
        key = self.pane_keys.get(pane, "")
        at = title.lower().find(key.lower()) if len(key) == 1 else -1
        if short:
            return [(f" {key or title[0].lower()}", f"{style} underline"), (" ", style)]
        if at < 0:
            return [(f" {title}" + (f" ({key}) " if key else " "), style)]
        return [(f" {title[:at]}", style), (title[at], f"{style} underline"),
                (f"{title[at + 1:]} ", style)]

    def _panes(self, short: bool, brand: bool = True) -> list[str | tuple[str, str]]:
        parts: list[str | tuple[str, str]] = [(" llmlab ", "bold $primary")] if brand else []
        for pane, title in self.panes:
            current = pane == self.pane
            style = "bold reverse $accent" if current else "$text-muted"
            parts += self._pane_title(pane, title, style, short=short and not current)
        return parts

    def render(self) -> Content:
        shown = "waiting" if self.waiting and self.state == "running" else self.state
        state = "  " + shown + (f" {self.step}" if self.step else "")
        # Narrow (a long session name, a step count): the other panes shrink to their keys.
        parts = self._panes(short=False)
        wanted = len(self.session_name) + 2 * self.dirty + 3 + len(state)
        help_hint = len(self.help_key) + 7
        width = Content.assemble(*parts).cell_length + wanted
        if width + help_hint > self.size.width >= width - 8 + help_hint:
            parts = self._panes(short=False, brand=False)  # the help hint stays, the name goes
        elif width > self.size.width:
            parts = self._panes(short=True)
        style = {"running": "$success", "paused": "$warning", "failed": "$error", "lost": "$error",
                 "preparing": "$warning", "stopping": "$warning",
                 "waiting": "$warning"}.get(shown, "$text-muted")
        # Narrow: the session's name gives way (middle ellipsis), the engine's state does not.
        room = self.size.width - Content.assemble(*parts).cell_length - 3 - len(state)
        name = fit(self.session_name, room - (2 if self.dirty else 0)) + (" *" if self.dirty
                                                                          else "")
        parts += [(" │ ", "$text-muted"), (name, "bold"), (state, style)]
        left = Content.assemble(*parts)
        right = Content.assemble((f"{self.help_key} help ", "$text-muted"))
        width = self.size.width
        if left.cell_length + 1 + right.cell_length > width:  # narrow: the help hint goes
            return left.truncate(width, ellipsis=True)
        gap = width - left.cell_length - right.cell_length
        return Content.assemble(left, " " * gap, right)
