"""The Prune pane's before/after table: the dense model, the pruned candidate and its int8
version side by side, each compared with the dense one.

The cells are plain strings made by `table_cells` (what a test or a bench reads back); the
widget only lays them out as a Rich table and colours the deltas (better / worse).
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from core.latency import format_latency, slower_than
from core.values import ModelFigures

ROWS = ("non-zero", "sparsity", "file size", "val loss", "perplexity", "top-1", "ROC AUC",
        "latency", "per token")

# A delta's sign: +1 better than dense, -1 worse, 0 no judgement.
Cell = tuple[str, str, int]


def compact_count(n: int) -> str:
    """13,952 / 123.4k / 1.23M: at most 7 characters."""
    if n < 100_000:
        return f"{n:,}"
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    if n < 1_000_000_000:
        return f"{n / 1e6:.2f}M"
    return f"{n / 1e9:.2f}G"


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover - the loop always returns


def _relative(new: float, old: float) -> tuple[str, float]:
    if old == 0:
        return "", 0.0
    change = new / old - 1
    if abs(change) < 0.005:
        return "", 0.0
    return f"{change:+.0%}", change


def cell(row: str, f: ModelFigures, dense: ModelFigures | None) -> Cell:
    """One figure of a column and its change against the dense model."""
    base = None if dense is None or f is dense else dense

    def judged(delta: float, text: str, lower_is_better: bool) -> tuple[str, int]:
        if not text or delta == 0:
            return "", 0
        return text, (1 if (delta < 0) == lower_is_better else -1)

    if row == "non-zero":
        text, change = _relative(f.nonzero, base.nonzero) if base else ("", 0.0)
        return (compact_count(f.nonzero), *judged(change, text, True))
    if row == "sparsity":
        return f"{f.sparsity:.1%}", "", 0
    if row == "file size":
        text, change = _relative(f.size_bytes, base.size_bytes) if base else ("", 0.0)
        return (human_bytes(f.size_bytes), *judged(change, text, True))
    if row == "val loss":
        d = f.loss - base.loss if base else 0.0
        return (f"{f.loss:.3f}", *judged(d, f"{d:+.3f}" if abs(d) >= 0.0005 else "", True))
    if row == "perplexity":
        d = f.perplexity - base.perplexity if base else 0.0
        return (f"{f.perplexity:.2f}", *judged(d, f"{d:+.2f}" if abs(d) >= 0.005 else "", True))
    if row == "top-1":
        d = (f.top1 - base.top1) * 100 if base else 0.0
        return (f"{f.top1:.1%}", *judged(d, f"{d:+.1f}" if abs(d) >= 0.05 else "", False))
    if row == "ROC AUC":
        if f.auc is None or f.auc != f.auc:  # not measured, or no class to average (NaN)
            return "–", "", 0
        d = f.auc - base.auc if base and base.auc is not None else 0.0
        return (f"{f.auc:.3f}", *judged(d, f"{d:+.3f}" if abs(d) >= 0.0005 else "", False))
    if row == "latency":
        return format_latency(f.latency_ms), "", 0  # (noisy: no delta; "–" untrusted)
    if row == "per token":  # one token of cached generation, as the Generate pane runs it
        return format_latency(f.token_ms), "", 0
    raise KeyError(row)


def header(f: ModelFigures, int8_column: bool = False) -> str:
    """A column's heading: "int8" for the int8 column, the label otherwise, with what was
    done after pruning on a second line ("magnitude 50%\\n+100 steps")."""
    if int8_column:
        return "int8"
    return f.label.replace(" +", "\n+", 1)


def table_cells(dense: ModelFigures | None, candidate: ModelFigures | None,
                int8: ModelFigures | None) -> dict[str, dict[str, Cell]]:
    """column -> row -> (value, delta, sign); columns "dense", "candidate", "int8" (those
    that exist)."""
    columns = {"dense": dense, "candidate": candidate, "int8": int8}
    cells = {name: {row: cell(row, f, dense) for row in ROWS}
             for name, f in columns.items() if f is not None}
    if dense is not None and int8 is not None and slower_than(dense, int8):
        # int8 that runs slower than fp32 (a small model) is no speed-up: the cells say so.
        for row, ms, base in (("latency", int8.latency_ms, dense.latency_ms),
                              ("per token", int8.token_ms, dense.token_ms)):
            if ms is not None and base is not None and ms > base:
                cells["int8"][row] = (format_latency(ms), "slower", -1)
    return cells


class PruneTable(Static):
    """`show(dense, candidate, int8, measuring)`: the table (nothing before a model is
    loaded)."""

    COMPONENT_CLASSES = {"prune-table--better", "prune-table--worse", "prune-table--label",
                         "prune-table--header", "prune-table--pending"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dense: ModelFigures | None = None
        self.candidate: ModelFigures | None = None
        self.int8: ModelFigures | None = None
        self.measuring = ""  # the label being measured ("" when nothing is)

    def show(self, dense: ModelFigures | None, candidate: ModelFigures | None,
             int8: ModelFigures | None, measuring: str = "") -> None:
        state = (dense, candidate, int8, measuring)
        if state == (self.dense, self.candidate, self.int8, self.measuring):
            return
        self.dense, self.candidate, self.int8, self.measuring = state
        self.clear_cached_dimensions()  # (the width is measured from what is shown)
        self.refresh(layout=True)

    def cells(self) -> dict[str, dict[str, Cell]]:
        return table_cells(self.dense, self.candidate, self.int8)

    def column(self, name: str) -> dict[str, str]:
        """A column's values as shown (without the deltas): row -> text."""
        return {row: value for row, (value, _d, _s) in self.cells().get(name, {}).items()}

    def wanted_width(self) -> int:
        """The columns the table needs (the pane sizes its side of the screen by it)."""
        from rich.measure import Measurement

        if self.dense is None:
            return 0
        console = self.app.console
        return Measurement.get(console, console.options, self.render()).maximum

    def render(self) -> Any:
        if self.dense is None:
            return Text("")
        style = self.get_component_rich_style
        better, worse = style("prune-table--better"), style("prune-table--worse")
        table = Table(box=None, padding=(0, 1), pad_edge=False, expand=False,
                      show_header=True, header_style=style("prune-table--header"))
        table.add_column("", style=style("prune-table--label"), no_wrap=True)
        headings = [("dense", header(self.dense))]
        if self.candidate is not None:
            headings.append(("candidate", header(self.candidate)))
        elif self.measuring:
            headings.append(("candidate", self.measuring.replace(" +", "\n+", 1)))
        if self.int8 is not None:
            headings.append(("int8", header(self.int8, int8_column=True)))
        for name, title in headings:
            heading = Text(title + (" …" if name == "candidate" and self.measuring else ""))
            table.add_column(heading, justify="right", no_wrap=True)
        cells = self.cells()
        pending = style("prune-table--pending")
        for row in ROWS:
            line: list[Any] = [row]
            for name, _title in headings:
                if name not in cells:
                    line.append(Text("…", style=pending))
                    continue
                value, delta, sign = cells[name][row]
                text = Text(value, style=pending if name == "candidate" and self.measuring
                            else "")
                if delta:
                    text.append(" ")
                    text.append(delta, style=better if sign > 0 else worse if sign < 0 else "")
                line.append(text)
            table.add_row(*line)
        return table
