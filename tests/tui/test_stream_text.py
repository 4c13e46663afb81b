"""tui.widgets.stream_text: text streamed in pieces shows as if it had been set whole."""

from __future__ import annotations

import random

from helpers.tui import sync
from textual.app import App, ComposeResult

from tui.widgets.stream_text import StreamText

WORDS = ["the", "quick", "brown", "fox", "小狐狸住在河边", "jumps", "over", "a",
         "supercalifragilisticexpialidocious-and-then-some", "dog.", "\n", "\n\n", "  ", "\t"]


def random_text(seed: int, words: int = 400) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words))


def pieces_of(text: str, seed: int) -> list[str]:
    """`text` cut at random places (a piece may end inside a word, or hold line breaks)."""
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(text)), 60))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


class StreamApp(App):
    def compose(self) -> ComposeResult:
        yield StreamText()


def shown(widget: StreamText) -> list[str]:
    """The widget's rows as the screen shows them (trailing spaces dropped)."""
    return [widget.render_line(y).text.rstrip() for y in range(widget.size.height)]


def wrapped(widget: StreamText) -> list[str]:
    return [line.plain for line in widget._lines]


@sync
async def test_text_appended_in_pieces_wraps_as_the_whole_text_would() -> None:
    for seed in range(3):
        text = random_text(seed)
        app = StreamApp()
        async with app.run_test(size=(30, 8)) as pilot:
            widget = app.query_one(StreamText)
            widget.set_text(("PROMPT:", "bold"))
            for piece in pieces_of(text, seed):
                widget.append(piece)
            await pilot.pause()
            streamed = wrapped(widget)
            widget.set_text(("PROMPT:", "bold"), text)
            await pilot.pause()
            assert streamed == wrapped(widget)
            assert widget.plain == "PROMPT:" + text
            width = widget.scrollable_content_region.width
            assert all(len(line.expandtabs()) <= width * 2 for line in streamed)  # CJK: 2 cells
            assert len(streamed) > widget.size.height  # the test scrolls


@sync
async def test_it_follows_the_end_unless_the_reader_scrolled_up() -> None:
    app = StreamApp()
    async with app.run_test(size=(30, 6)) as pilot:
        widget = app.query_one(StreamText)
        widget.set_text("")
        for i in range(40):
            widget.append(f"line {i}\n")
            await pilot.pause()
        assert widget.scroll_offset.y == widget.max_scroll_y > 0
        assert widget.max_scroll_y == widget.line_count - widget.size.height
        assert "line 39" in shown(widget)
        widget.scroll_to(y=3, animate=False, immediate=True)
        await pilot.pause()
        widget.append("line 40\nline 41\n")
        await pilot.pause()
        assert widget.scroll_offset.y == 3  # the reader's place is kept
        assert shown(widget)[0] == "line 3"
        widget.scroll_end(animate=False, immediate=True)
        await pilot.pause()
        widget.append("line 42\n")
        await pilot.pause()
        assert shown(widget)[-2:] == ["line 42", ""]


@sync
async def test_a_narrower_terminal_wraps_it_again() -> None:
    app = StreamApp()
    async with app.run_test(size=(60, 10)) as pilot:
        widget = app.query_one(StreamText)
        text = random_text(7, 80).replace("\t", " ")
        widget.set_text(text)
        await pilot.pause()
        wide = widget.line_count
        await pilot.resize_terminal(24, 10)
        await pilot.pause()
        width = widget.scrollable_content_region.width
        assert widget.line_count > wide
        assert max(len(line) for line in wrapped(widget)) <= width
        assert widget.plain == text


@sync
async def test_a_selection_copies_the_text_shown() -> None:
    from textual.geometry import Offset
    from textual.selection import Selection

    app = StreamApp()
    async with app.run_test(size=(40, 6)) as pilot:
        widget = app.query_one(StreamText)
        widget.set_text("first line\nsecond")
        await pilot.pause()
        text, _ = widget.get_selection(Selection(Offset(0, 0), Offset(6, 1)))
        assert text == "first line\nsecond"


@sync
async def test_a_selection_of_wrapped_text_copies_it_as_given() -> None:
    """A paragraph wrapped over several rows is copied as one line, with the spaces its folds
    dropped (copied row by row it came back broken at every fold, words glued together)."""
    from textual.geometry import Offset
    from textual.selection import Selection

    text = "the quick  brown fox jumps over the lazy dog\n小狐狸住在河边，每天早上去看太阳。\nend"
    app = StreamApp()
    async with app.run_test(size=(13, 12)) as pilot:
        widget = app.query_one(StreamText)
        for piece in pieces_of(text, 3)[:8] + ["".join(pieces_of(text, 3)[8:])]:
            widget.append(piece)
        await pilot.pause()
        rows = wrapped(widget)
        assert len(rows) > 6 and "the quick" in rows[0] and "brown" not in rows[0]
        assert widget.get_selection(Selection(None, None))[0] == text
        everything = Selection(Offset(0, 0), Offset(len(rows[-1]), len(rows) - 1))
        assert widget.get_selection(everything)[0] == text
        # from "quick" on the first row to "fox" on the second: the dropped spaces are back
        second = rows[1]
        span = Selection(Offset(4, 0), Offset(second.index("fox") + 3, 1))
        assert widget.get_selection(span)[0] == "quick  brown fox"
        # across the wrapped Chinese paragraph and into the next one
        cjk = next(y for y, row in enumerate(rows) if row.startswith("小"))
        span = Selection(Offset(2, cjk), Offset(2, len(rows) - 1))
        assert widget.get_selection(span)[0] == "狸住在河边，每天早上去看太阳。\nen"
