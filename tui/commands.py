"""The command palette (ctrl+p): every action of the app, found by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass
class PaletteCommand:
    title: str
    help: str
    run: Callable[[], Any]


class LlmlabCommands(Provider):
    """Lists `app.palette_commands()`: training, session, panes, plots, themes, help."""

    def _commands(self) -> list[PaletteCommand]:
        return self.app.palette_commands()  # type: ignore[attr-defined]

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(command.title, command.run, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(score, matcher.highlight(command.title), command.run,
                          help=command.help)
