"""The top line: the panes (the current one highlighted, each with its key), the session,
and the engine state.

A pane's key is shown as an underlined letter of its name when it is one (Dataset, Model ...:
the default keys), else in brackets after it; the footer keeps its room for the pane's own
keys."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

PANES = (("dataset", "Dataset"), ("model", "Model"), ("train", "Train"), ("prune", "Prune"),
         ("generate", "Generate"), ("runs", "Runs"))


class TitleBar(Widget):
    pane: reactive[str] = reactive("dataset")
    session_name: reactive[str] = reactive("")
    dirty: reactive[bool] = reactive(False)
    state: reactive[str] = reactive("idle")
    step: reactive[str] = reactive("")
    help_key: reactive[str] = reactive("?")
    pane_keys: reactive[dict[str, str]] = reactive(dict)  # pane -> its key, as displayed

    def _pane_title(self, pane: str, title: str, style: str) -> list[str | tuple[str, str]]:
        key = self.pane_keys.get(pane, "")
        at = title.lower().find(key.lower()) if len(key) == 1 else -1
        if at < 0:
            return [(f" {title}" + (f" ({key}) " if key else " "), style)]
        return [(f" {title[:at]}", style), (title[at], f"{style} underline"),
                (f"{title[at + 1:]} ", style)]

    def render(self) -> Content:
        parts: list[str | tuple[str, str]] = [(" llmlab ", "bold $primary")]
        for pane, title in PANES:
            style = "bold reverse $accent" if pane == self.pane else "$text-muted"
            parts += self._pane_title(pane, title, style)
        name = self.session_name + (" *" if self.dirty else "")
        parts.append((" │ ", "$text-muted"))
        parts.append((name, "bold"))
        state = self.state + (f" {self.step}" if self.step else "")
        style = {"running": "$success", "paused": "$warning", "failed": "$error",
                 "preparing": "$warning", "stopping": "$warning"}.get(self.state, "$text-muted")
        parts.append(("  " + state, style))
        left = Content.assemble(*parts)
        right = Content.assemble((f"{self.help_key} help ", "$text-muted"))
        width = self.size.width
        if left.cell_length + 1 + right.cell_length > width:  # narrow: the help hint goes
            return left.truncate(width, ellipsis=True)
        gap = width - left.cell_length - right.cell_length
        return Content.assemble(left, " " * gap, right)
