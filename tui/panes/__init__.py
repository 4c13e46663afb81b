"""The app's panes, one per file, and the registry the app is built from.

`PANES` is the one list of panes: the app composes them in this order and derives from it
the title bar, the pane keys, the palette's "Go to", the help screen and the engine
subscriptions. Adding a pane is one new file (a `tui.panes.base.Pane` subclass) plus one line
here; see `tui/panes/base.py` for the contract.
"""

from __future__ import annotations

from tui.panes.base import Pane
from tui.panes.dataset import DatasetPane
from tui.panes.generate import GeneratePane
from tui.panes.model import ModelPane
from tui.panes.prune import PrunePane
from tui.panes.runs import RunsPane
from tui.panes.train import TrainPane

PANES: list[type[Pane]] = [DatasetPane, ModelPane, TrainPane, PrunePane, GeneratePane, RunsPane]

__all__ = ["PANES", "Pane"]
