"""A text preview with token boundaries shown by alternating background colours."""

from __future__ import annotations

from textual.content import Content
from textual.widget import Widget


class TokenPreview(Widget):
    """Shows `text` cut into `spans` ((start, end) per token), every other token shaded.

    The two shades are the theme variables `token-a` and `token-b`; characters between
    tokens (the spaces a word tokenizer drops) are shown plain.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.text = ""
        self.spans: list[tuple[int, int]] = []

    def show(self, text: str, spans: list[tuple[int, int]]) -> None:
        self.text = text.replace("\t", " ")
        self.spans = spans
        self.refresh(layout=True)

    def render(self) -> Content:
        parts: list[str | tuple[str, str]] = []
        last = 0
        for i, (start, end) in enumerate(self.spans):
            if start < last:
                continue
            parts.append(self.text[last:start])
            parts.append((self.text[start:end], "on $token-b" if i % 2 else "on $token-a"))
            last = end
        parts.append(self.text[last:])
        return Content.assemble(*parts)
