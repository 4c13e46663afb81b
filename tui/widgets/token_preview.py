"""A text preview with token boundaries shown by alternating background colours, or each
token coloured by its loss under a model (the surprise heatmap)."""

from __future__ import annotations

from textual.content import Content
from textual.widget import Widget

from core.text import visible
from tui.widgets.surprise_legend import HeatScale, heat_style


class TokenPreview(Widget):
    """Shows `text` cut into `spans` ((start, end) per token), every other token shaded.

    The two shades are the theme variables `token-a` and `token-b`; characters between
    tokens (the spaces a word tokenizer drops) are shown plain. `show_heat` colours the same
    text by loss instead (`heat_spans` are the scoring model's tokens, which may differ from
    the corpus tokenizer's `spans`); `show` with new text, or `hide_heat`, ends that.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.text = ""
        self.spans: list[tuple[int, int]] = []
        self.heat_spans: list[tuple[int, int]] = []
        self.losses: list[float] = []
        self.scale: HeatScale | None = None  # None: the boundary view

    @property
    def heat_shown(self) -> bool:
        return self.scale is not None

    def show(self, text: str, spans: list[tuple[int, int]]) -> None:
        self.text = visible(text.replace("\t", " "), keep="\n")  # (same length: spans hold)
        self.spans = spans
        self._drop_heat()
        self.refresh(layout=True)

    def show_heat(self, spans: list[tuple[int, int]], losses: list[float],
                  scale: HeatScale) -> None:
        """Colour the shown text's tokens (`spans`, offsets into the text) by `losses`."""
        self.heat_spans = list(spans)
        self.losses = list(losses)
        self.scale = scale
        self.refresh(layout=True)

    def hide_heat(self) -> None:
        self._drop_heat()
        self.refresh(layout=True)

    def _drop_heat(self) -> None:
        self.heat_spans, self.losses, self.scale = [], [], None

    def render(self) -> Content:
        if self.scale is not None:
            scale = self.scale
            styles = [None if (level := scale.bucket(loss)) is None else heat_style(level)
                      for loss in self.losses]
            return self._assemble(self.heat_spans, styles)
        return self._assemble(self.spans, ["on $token-b" if i % 2 else "on $token-a"
                                           for i in range(len(self.spans))])

    def _assemble(self, spans: list[tuple[int, int]], styles: list[str | None]) -> Content:
        parts: list[str | tuple[str, str]] = []
        last = 0
        for (start, end), style in zip(spans, styles, strict=False):
            if start < last:
                continue
            parts.append(self.text[last:start])
            piece = self.text[start:end]
            parts.append((piece, style) if style else piece)
            last = end
        parts.append(self.text[last:])
        return Content.assemble(*parts)
