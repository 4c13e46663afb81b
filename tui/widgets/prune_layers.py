"""The Prune pane's per-layer view: each prunable layer's sparsity as a number and a bar."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

BAR = 20  # cells of a full bar, at most
EIGHTHS = " ▏▎▍▌▋▊▉"


def short_name(name: str) -> str:
    """"transformer.h.0.attn.c_attn.weight" -> "h.0.attn.c_attn": what tells layers apart."""
    for prefix in ("transformer.", "model."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name.removesuffix(".weight")


def bar(fraction: float, width: int = BAR) -> str:
    """A horizontal bar of `fraction` (0..1) in eighths of a cell."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (EIGHTHS[rest] if rest else "")).ljust(width)


class PruneLayers(Static):
    """`show(title, layers)`; layers are (name, sparsity) pairs as ModelFigures has them."""

    COMPONENT_CLASSES = {"prune-layers--title", "prune-layers--bar", "prune-layers--name"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.heading = ""
        self.entries: list[tuple[str, float]] = []

    def show(self, title: str, layers: list[tuple[str, float]]) -> None:
        if (title, layers) == (self.heading, self.entries):
            return
        self.heading, self.entries = title, list(layers)
        self.clear_cached_dimensions()  # (the width is measured from what is shown)
        self.refresh(layout=True)

    def render(self) -> Any:
        style = self.get_component_rich_style
        table = Table(box=None, padding=(0, 1), pad_edge=False, expand=False,
                      title=self.heading, title_style=style("prune-layers--title"),
                      title_justify="left", show_header=False)
        table.add_column(style=style("prune-layers--name"), overflow="ellipsis", no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        table.add_column(style=style("prune-layers--bar"), no_wrap=True)
        if not self.entries:
            return Text(f"{self.heading}\n(no prunable layers)")
        names = [short_name(name) for name, _s in self.entries]
        # The bar takes what the names and numbers leave (the table keeps to the widget).
        room = (self.size.width or 40) - max(len(n) for n in names) - 7
        width = max(3, min(BAR, room))
        for name, (_full, sparsity) in zip(names, self.entries, strict=True):
            table.add_row(name, f"{sparsity:.0%}", bar(sparsity, width))
        return table
