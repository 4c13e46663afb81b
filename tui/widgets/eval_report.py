"""The Train pane's evaluation report: what was evaluated, then every figure of
`core.report.EvalReport` on as few lines as the width allows.

Hidden until the first Evaluate; it says "evaluating …" while the engine works, so the key
has visible effect at once and the screen never waits for the answer.
"""

from __future__ import annotations

from pathlib import Path

from textual.content import Content
from textual.widgets import Static

from core import messages as msg


def figure_lines(rows: list[tuple[str, str, str]], width: int) -> list[list[tuple[str, str]]]:
    """The (name, value) pairs of `rows`, packed into lines of at most `width` cells, two
    spaces between pairs."""
    lines: list[list[tuple[str, str]]] = [[]]
    used = 0
    for name, value, _note in rows:
        cost = len(name) + 1 + len(value) + (2 if lines[-1] else 0)
        if lines[-1] and used + cost > width:
            lines.append([])
            used, cost = 0, cost - 2
        lines[-1].append((name, value))
        used += cost
    return lines


class EvalReportView(Static):
    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.report: msg.Evaluated | None = None
        self.pending: str | None = None  # the split being evaluated
        self.display = False

    def evaluating(self, split: str) -> None:
        self.pending = split
        self.display = True
        self._show()

    def show_report(self, report: msg.Evaluated) -> None:
        self.report, self.pending = report, None
        self.display = True
        self._show()

    def failed(self) -> None:
        """The evaluation did not come (the engine said why, in the log)."""
        self.pending = None
        self.display = self.report is not None
        self._show()

    def on_resize(self) -> None:
        self._show()

    def _show(self) -> None:
        muted, name_style, value_style = "$text-muted", "$accent", "bold"
        r = self.report
        parts: list[tuple[str, str] | str] = []
        if self.pending is not None:
            parts.append((f"evaluating the {self.pending} split …", muted))
            if r is not None:
                parts.append(("  (last report below)", muted))
        if r is not None:
            if parts:
                parts.append("\n")
            source = Path(r.source)
            parts.append((f"{source.parent.name}/{source.name} step {r.step}, {r.scope}",
                          muted))
            width = max(20, (self.size.width or 80) - 2)
            for line in figure_lines(r.rows, width):
                parts.append("\n")
                for i, (name, value) in enumerate(line):
                    if i:
                        parts.append("  ")
                    parts += [(name + " ", name_style), (value, value_style)]
        self.update(Content.assemble(*parts))
