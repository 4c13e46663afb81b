"""One registry of panes (issue 11, item 1): every pane is a `Pane` with its key and title, and
the registry alone puts it in the title bar, the keys, the palette's "Go to", the help screen
and the engine subscriptions. A toy pane added as a newcomer would (one file, one line in
tui/panes/__init__.py) shows up everywhere."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from helpers.tui import small_session, wait_for

from tui.app import LlmlabApp
from tui.panes import PANES, Pane
from tui.widgets.title_bar import TitleBar

HERE = Path(__file__).resolve().parent


def test_every_pane_comes_from_the_registry(tmp_path: Path) -> None:
    assert len({p.KEY for p in PANES}) == len({p.pane_name() for p in PANES}) == len(PANES)

    async def scenario() -> None:
        app = LlmlabApp(small_session(tmp_path), None)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause()
            assert [type(p) for p in app.panes()] == PANES
            assert all(isinstance(p, Pane) for p in app.panes())
            titles = [c.title for c in app.palette_commands()]
            help_titles = [title for title, _ in app.help_groups()]
            bar = str(app.query_one(TitleBar).render())
            for pane_class in PANES:
                assert f"Go to {pane_class.TITLE}" in titles
                assert pane_class.TITLE in bar
                assert f"{pane_class.TITLE} pane" in help_titles
            for pane_class in reversed(PANES):
                await pilot.press(pane_class.KEY)
                await wait_for(pilot, lambda p=pane_class: app.current_pane == p.pane_name(),
                               10, f"the {pane_class.TITLE} pane")
                assert app.query_one(TitleBar).pane == pane_class.pane_name()
            # Each pane's own palette commands are in the palette.
            for pane in app.panes():
                for command in pane.palette_commands():
                    assert command.title in titles

    asyncio.run(scenario())


TOY_PANE = '''
from textual.app import ComposeResult
from textual.widgets import Static

from tui.keymap import bind
from tui.panes.base import Pane


class ToyPane(Pane):
    KEY = "j"
    TITLE = "Toy"
    ABOUT = "a pane a newcomer adds"
    BINDINGS = [bind("toy.poke", "poke", "Poke", help="Poke the toy", default="k")]

    def compose(self) -> ComposeResult:
        yield Static("", id="toy-text")

    def show_session(self, doc, force=False) -> None:
        self.query_one("#toy-text", Static).update(f"session {doc.session.name}")
'''

SCENARIO = '''
import asyncio, sys
from pathlib import Path

import tui.panes
from toy_pane import ToyPane

tui.panes.PANES.append(ToyPane)  # the registry line

from helpers.tui import small_session, wait_for
from tui.app import LlmlabApp
from tui.widgets.title_bar import TitleBar


async def scenario() -> None:
    app = LlmlabApp(small_session(Path(sys.argv[1])), None)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        assert "Toy" in str(app.query_one(TitleBar).render())
        assert "Go to Toy" in [c.title for c in app.palette_commands()]
        groups = dict(app.help_groups())
        assert [b.description for b in groups["Toy pane"]] == ["Poke"]
        assert any(b.id == "app.toy" for b in groups["Anywhere (not while typing in a field)"])
        await pilot.press("j")
        await wait_for(pilot, lambda: app.current_pane == "toy", 10, "the toy pane")
        toy = app.query_one(ToyPane)
        assert "session tiny" in str(toy.query_one("#toy-text").render())
        print("toy pane shown")


asyncio.run(scenario())
'''


def test_a_new_pane_is_one_file_and_one_registry_line(tmp_path: Path) -> None:
    (tmp_path / "toy_pane.py").write_text(TOY_PANE)
    (tmp_path / "scenario.py").write_text(SCENARIO)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(tmp_path / "scenario.py"), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "toy pane shown" in done.stdout


def test_app_state_flows_down_to_every_pane(tmp_path: Path) -> None:
    """The app's reactive state is the panes' own, bound: set on the app, read in a pane."""

    async def scenario() -> None:
        app = LlmlabApp(small_session(tmp_path), None)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            app.model_loading = "runs/tiny/run-1"
            app.busy = True
            assert app.write_session(tmp_path / "mine.toml")
            await pilot.pause()
            for pane in app.panes():
                assert pane.model_loading == "runs/tiny/run-1" and pane.busy
                assert pane.session_path == (tmp_path / "mine.toml").resolve()
                assert pane.doc is app.document

    asyncio.run(scenario())
