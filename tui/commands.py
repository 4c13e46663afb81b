"""The command palette (ctrl+p): every action of the app, found by name.

A palette command is Textual's `SystemCommand` (title, help, callback): the app lists its own
and each pane's (`Pane.palette_commands`) from `App.get_system_commands`, which Textual's
system-commands provider searches.
"""

from __future__ import annotations

from textual.app import SystemCommand

PaletteCommand = SystemCommand
