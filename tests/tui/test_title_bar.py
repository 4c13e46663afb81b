"""The title bar: at a narrow width the session name shortens, the state stays whole."""

from __future__ import annotations


def test_a_narrow_title_bar_shortens_the_session_name_not_the_state() -> None:
    import asyncio

    from textual.app import App, ComposeResult

    from tui.panes import PANES
    from tui.widgets.title_bar import TitleBar, fit

    assert fit("tiny-tales-gpt", 8) == "tiny…gpt" and fit("tiny", 8) == "tiny"

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield TitleBar([(p.pane_name(), p.TITLE) for p in PANES])

    async def scenario() -> None:
        app = One()
        async with app.run_test(size=(80, 3)) as pilot:
            bar = app.query_one(TitleBar)
            bar.session_name, bar.dirty = "a-very-long-session-name-indeed", True
            bar.state, bar.step = "stopped", "160/2000"
            await pilot.pause()
            line = str(bar.render())
            assert line.rstrip().endswith("stopped 160/2000")
            assert "…" in line and line.count("*") == 1 and len(line) <= 80

    asyncio.run(scenario())


def test_at_80_columns_the_help_hint_stays_and_the_brand_gives_way() -> None:
    """Seven panes, a short session name, idle: everything but the "llmlab" brand fits, so
    the brand goes and "? help" (how a newcomer finds every key) stays; wider, both show."""
    import asyncio

    from textual.app import App, ComposeResult

    from tui.panes import PANES
    from tui.widgets.title_bar import TitleBar

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield TitleBar([(p.pane_name(), p.TITLE) for p in PANES])

    async def line_at(width: int) -> str:
        app = One()
        async with app.run_test(size=(width, 3)) as pilot:
            bar = app.query_one(TitleBar)
            bar.session_name, bar.state = "tiny", "idle"
            await pilot.pause()
            return str(bar.render())

    narrow, wide = asyncio.run(line_at(80)), asyncio.run(line_at(100))
    assert narrow.rstrip().endswith("? help") and "llmlab" not in narrow
    assert all(p.TITLE in narrow for p in PANES) and "tiny  idle" in narrow
    assert wide.startswith(" llmlab ") and wide.rstrip().endswith("? help")
