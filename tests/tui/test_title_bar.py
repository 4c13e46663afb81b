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
