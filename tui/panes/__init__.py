"""The app's panes, one per file, and the registry the app is built from.

`PANES` is the one list of panes: the app composes them in this order and derives from it
the title bar, the pane keys, the palette's "Go to", the help screen and the engine
subscriptions. Adding a pane is one new file (a `tui.panes.base.Pane` subclass) plus one line
here; see `tui/panes/base.py` for the contract.
"""

from __future__ import annotations

from textual.binding import Binding

from tui.keymap import bind
from tui.panes.base import Pane
from tui.panes.dataset import DatasetPane
from tui.panes.generate import GeneratePane
from tui.panes.model import ModelPane
from tui.panes.prune import PrunePane
from tui.panes.runs import RunsPane
from tui.panes.sweep import SweepPane
from tui.panes.train import TrainPane

PANES: list[type[Pane]] = [DatasetPane, ModelPane, TrainPane, PrunePane, GeneratePane, RunsPane,
                             SweepPane]


def pane_bindings() -> list[Binding]:
    """A key per pane of the registry that shows it (`app.<name>`; tui/keymap.toml or a
    user keymap may move it)."""
    return [bind(f"app.{p.pane_name()}", f"show_pane('{p.pane_name()}')", p.TITLE,
                 show=False, help=f"{p.TITLE} pane: {p.ABOUT}", default=p.KEY) for p in PANES]


def pane_styles() -> list[str]:
    """Each pane's .tcss (beside its module), in the registry's order."""
    return [str(path) for path in (p.css_path() for p in PANES) if path is not None]


__all__ = ["PANES", "Pane", "pane_bindings", "pane_styles"]
