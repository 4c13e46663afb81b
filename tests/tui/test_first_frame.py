"""The first frame (issue 15, item 6): it holds what the first screen shows and nothing more.

The panes not on screen are mounted at their first show (tui.panes.base.Pane.build), and what
the first screen does not show (the corpus's statistics, the newest run's curves) starts once
the first frame is drawn (the app's Ready). Driven by keys at 80x24; no wall time is asserted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers.tui import _palette_has, paste, settle, small_session, sync, wait_for
from textual.widgets._footer import FooterKey

import tui.app
from tui.app import LlmlabApp
from tui.panes import PANES, pane_styles

SIZE = (80, 24)


class FirstFrameApp(LlmlabApp):
    """The app, with what it was at its first frame written down (Textual sends Ready once
    that frame is drawn, and calls this handler before the app's own)."""

    CSS_PATH = [str(Path(tui.app.__file__).with_name("app.tcss")), *pane_styles()]

    def on_ready(self) -> None:
        pane = self.dataset_pane
        self.first_frame: dict[str, Any] = {
            "built": {p.pane_name(): p.built for p in self.panes()},
            "children": {p.pane_name(): len(p.children) for p in self.panes()},
            "reading": pane.reading,
            "corpus": self.corpus,
            "focused": self.focused,
            "footer": [key.description for key in self.query(FooterKey)],
        }


@sync
async def test_the_first_frame_holds_the_pane_shown_and_its_keys_and_nothing_more(
        tmp_path: Path) -> None:
    app = FirstFrameApp(small_session(tmp_path), None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: hasattr(app, "first_frame"), 30, "the first frame")
        first = app.first_frame
        resident = {p.pane_name() for p in PANES if not p.LAZY}
        assert resident == {"dataset", "train"}
        for name, built in first["built"].items():
            assert built == (name in resident), name
            assert (first["children"][name] > 0) == (name in resident), name
        # The corpus is read after the first frame; the pane says it is about to be.
        assert not first["reading"] and first["corpus"] is None
        assert first["focused"] is app.dataset_pane
        assert "Browse" in first["footer"] and "Start" in first["footer"]
        await wait_for(pilot, lambda: app.corpus is not None, 30, "the corpus, read after")

        # Each pane is mounted when first shown, then kept.
        for pane in app.panes():
            await pilot.press(pane.KEY)
            await wait_for(pilot, lambda p=pane: p.built and app.current_pane == p.pane_name(),
                           10, f"the {pane.TITLE} pane")
            assert pane.children
        assert app.model_pane.rows()["model.n_embd"].is_mounted
        await settle(pilot)


@sync
async def test_a_palette_command_of_a_pane_not_shown_yet_works(tmp_path: Path) -> None:
    """The command mounts the pane's widgets first; the pane shows the result when shown."""
    app = LlmlabApp(small_session(tmp_path), None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.corpus is not None, 30, "the corpus")
        generate = app.query_one("#generate")
        assert not generate.built
        await pilot.press("ctrl+p")
        await paste(pilot, "Generate: side by side on/off")
        await wait_for(pilot, lambda: _palette_has(app, "Generate: side by side on/off"), 10,
                       "the palette entry")
        await pilot.press("enter")
        await wait_for(pilot, lambda: generate.side_by_side, 10, "side by side on")
        assert generate.built and app.current_pane == "dataset"
        await pilot.press("g")
        await wait_for(pilot, lambda: app.current_pane == "generate", 10, "the Generate pane")
        assert generate.column("dense").display and generate.column("compressed").display
        await settle(pilot)
