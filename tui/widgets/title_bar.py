"""The top line: the panes (the current one highlighted), the session, and the engine state."""

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

    def render(self) -> Content:
        parts: list[str | tuple[str, str]] = [(" llmlab ", "bold $primary")]
        for pane, title in PANES:
            if pane == self.pane:
                parts.append((f" {title} ", "bold reverse $accent"))
            else:
                parts.append((f" {title} ", "$text-muted"))
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
