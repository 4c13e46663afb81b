"""Optuna's parameter importances as bars of text, largest first (the Sweep pane)."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from core.text import one_line

BAR = "█"


class ImportanceBars(Static):
    """Call `show(importances, note)`: `note` says why there are none yet."""

    def show(self, importances: dict[str, float], note: str = "") -> None:
        if not importances:
            self.update(Content(one_line(note or "importances: none yet")))
            return
        width = max(10, (self.size.width or 80) - 40)
        lines = [Content("importances (Optuna, fANOVA): the share of the val loss's "
                         "variation each field explains")]
        for name, share in sorted(importances.items(), key=lambda kv: -kv[1]):
            bar = BAR * max(1, round(share * width)) if share > 0 else ""
            lines.append(Content.assemble(f"{one_line(name)[:24]:<24} ", (bar, "$accent"),
                                          f" {share:6.1%}"))
        self.update(Content("\n").join(lines))
