"""Text that grows at its end, wrapped to the widget's width and drawn line by line.

A Static holding a generation wraps and renders all of its text again at every new piece, and
its growing height makes the whole screen lay itself out again: streaming 4,000 tokens kept the
app's process busy a third of the time, which the engine generating beside it pays for
(bench/ui.py, the Generate pane's tokens/s). Here appending wraps again only the last
paragraph, and only the lines on screen are rendered (Textual's line API, as its Log does,
plus wrapping). It follows the end while new text comes, unless the user scrolled up to read.
"""

from __future__ import annotations

from typing import Any

from textual.cache import LRUCache
from textual.content import Content
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.selection import Selection
from textual.strip import Strip
from textual.style import Style
from textual.visual import Visual

Part = str | tuple[str, str]  # plain text, or (text, style) as Content.assemble takes them


class StreamText(ScrollView):
    """Wrapped text fed by `set_text` (all of it) and `append` (more at the end)."""

    ALLOW_SELECT = True
    DEFAULT_CSS = """
    StreamText {
        scrollbar-gutter: stable;  /* a scrollbar appearing never narrows the wrapped text */
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._paragraphs: list[Content] = [Content()]  # the text, split at its line breaks
        self._lines: list[Content] = []  # the paragraphs wrapped at `_width`
        # where each wrapped line starts: (paragraph, character in it); a selection is copied
        # from the paragraphs, not the lines (wrapping drops the spaces at each fold)
        self._origins: list[tuple[int, int]] = []
        self._last_start = 0  # where the last paragraph's wrapped lines begin in `_lines`
        self._width = 0
        self._strips: LRUCache[int, Strip] = LRUCache(256)

    @property
    def plain(self) -> str:
        """All the text, as given."""
        return "\n".join(p.plain for p in self._paragraphs)

    @property
    def line_count(self) -> int:
        """Lines the text takes once wrapped."""
        return len(self._lines)

    # ------------------------------------------------------------------ feeding

    def set_text(self, *parts: Part) -> None:
        """Show `parts` in place of everything shown so far (and go back to the top)."""
        self._paragraphs = Content.assemble(*parts).split("\n", allow_blank=True)
        self._wrap_all()
        self.scroll_home(animate=False, immediate=True)
        self.refresh()

    def append(self, *parts: Part) -> None:
        """Add `parts` at the end: only the last paragraph is wrapped again."""
        new = Content.assemble(*parts)
        if not new:
            return
        follow = self.is_vertical_scroll_end
        first, *rest = new.split("\n", allow_blank=True)
        self._paragraphs[-1] = self._paragraphs[-1] + first
        changed_from = len(self._paragraphs) - 1
        self._paragraphs.extend(rest)
        start = self._last_start
        del self._lines[start:]
        del self._origins[start:]
        self._wrap_from(changed_from)
        for y in range(start, len(self._lines) + 1):
            self._strips.discard(y)
        laid_out = self._grow()
        self.refresh_lines(start, len(self._lines) - start)
        if follow:  # (after the layout, if there is one: the scrollbar must exist first)
            self.scroll_end(animate=False, immediate=not laid_out, x_axis=False)

    def _grow(self) -> bool:
        """The virtual size follows the lines; whether the screen will be laid out again.

        Setting it lays the whole screen out again (Textual's `virtual_size` is a layout
        reactive), which was most of what a new piece cost; that is needed only when the
        scrollbar appears or goes, so otherwise only the scrollbar and the scroll limits are
        brought up to date. (With `overflow-y: scroll` the scrollbar never goes: the Generate
        pane's columns then lay nothing out from one generation to the next.)"""
        size = Size(self._width, len(self._lines))
        # (_scroll_update is Textual 8's, not public: without it, lay out as Log does)
        scroll_update = getattr(self, "_scroll_update", None)
        if self._shows_bar(size.height) != self.show_vertical_scrollbar \
                or not self.virtual_size or scroll_update is None:
            self.virtual_size = size
            return True
        self.set_reactive(StreamText.virtual_size, size)
        scroll_update(size)
        return False

    def _shows_bar(self, height: int) -> bool:
        """Whether Textual shows the vertical scrollbar for text `height` lines high."""
        overflow = self.styles.overflow_y
        return overflow == "scroll" or (
            overflow == "auto" and height > self.scrollable_content_region.height)

    # ------------------------------------------------------------------ wrapping

    def _wrap_all(self) -> None:
        self._width = self.scrollable_content_region.width
        self._lines, self._origins = [], []
        self._strips.clear()
        self._wrap_from(0)
        self._grow()

    def _wrap_from(self, index: int) -> None:
        """Wrap the paragraphs from `index` on onto the end of `_lines`."""
        width = self._width
        if width <= 0:
            return  # not laid out yet: wrapped at the first resize
        for number, paragraph in enumerate(self._paragraphs[index:], index):
            self._last_start = len(self._lines)
            lines = paragraph.wrap(width) if paragraph else [Content()]
            self._lines.extend(lines)
            self._origins.extend(_origins(number, paragraph.plain, lines))

    def on_resize(self) -> None:
        if self.scrollable_content_region.width != self._width:
            follow = self.is_vertical_scroll_end
            self._wrap_all()
            if follow:
                self.scroll_end(animate=False, x_axis=False)  # (after the layout)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    # ------------------------------------------------------------------ drawing

    def render_line(self, y: int) -> Strip:
        index = self.scroll_offset.y + y
        width = self.scrollable_content_region.width
        if index >= len(self._lines):
            return Strip.blank(width, self.visual_style.rich_style)
        strip = self._strips.get(index) if self.text_selection is None else None
        if strip is None:
            strip = self._render_one(index, width)
            if self.text_selection is None:
                self._strips[index] = strip
        return strip

    def _render_one(self, index: int, width: int) -> Strip:
        line = self._lines[index]
        selection = self.text_selection
        if selection is not None and (span := selection.get_span(index)) is not None:
            start, end = span
            style = Style.from_styles(self.screen.get_component_styles("screen--selection"))
            line = line.stylize(style, start, len(line) if end == -1 else end)
        strips = Visual.to_strips(self, line, width, 1, self.visual_style, apply_selection=False)
        strip = strips[0] if strips else Strip.blank(width)
        return strip.extend_cell_length(width, self.visual_style.rich_style).apply_offsets(
            0, index)

    # ------------------------------------------------------------------ selecting

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        """The selected text as it was given: a paragraph wrapped over several lines comes
        back as one line, with the spaces its folds dropped."""
        text = self.plain
        start = 0 if selection.start is None else self._text_offset(*selection.start)
        end = len(text) if selection.end is None else self._text_offset(*selection.end)
        return text[start:end], "\n"

    def _text_offset(self, x: int, y: int) -> int:
        """Where the character at `x` of wrapped line `y` is in `plain`."""
        if y >= len(self._origins):
            return len(self.plain)
        paragraph, start = self._origins[y]
        before = sum(len(p.plain) + 1 for p in self._paragraphs[:paragraph])
        return before + min(start + x, len(self._paragraphs[paragraph].plain))

    def selection_updated(self, selection: Selection | None) -> None:
        self._strips.clear()
        self.refresh()


def _origins(paragraph: int, text: str, lines: list[Content]) -> list[tuple[int, int]]:
    """Where each of `lines` (`text` wrapped) starts in `text`: each is the next piece of it,
    after the spaces a fold dropped."""
    out, at = [], 0
    for line in lines:
        found = text.find(line.plain, at) if line.plain else -1
        at = found if found >= 0 else at  # (not found, a tab expanded: where it should be)
        out.append((paragraph, at))
        at += len(line.plain)
    return out
