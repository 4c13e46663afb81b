"""What the app does when its terminal goes away (an SSH connection dropped, tmux killed):
stop the engine (a running training saves a checkpoint) and exit.

A plain Python signal handler, not the event loop's: once the terminal is gone Textual's
output thread dies on its first write and the loop then blocks on the full output queue, where
a loop handler never runs and the process would live on, reparented to init.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any


def detach_from_terminal() -> None:
    """Point stdin, stdout and stderr at /dev/null (the terminal is gone: writes to it fail)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


class HangupGuard:
    """On SIGHUP: detach from the terminal, run `stop` (blocking), and end the process."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self.stop = stop
        self._before: Any = None
        self._installed = False

    def install(self) -> None:
        try:
            self._before = signal.signal(signal.SIGHUP, self._hang_up)
            self._installed = True
        except (ValueError, AttributeError):
            pass  # not on this platform, or not in the main thread (tests)

    def uninstall(self) -> None:
        if self._installed:
            signal.signal(signal.SIGHUP, self._before)
            self._installed = False

    def _hang_up(self, signum: int, frame: object) -> None:
        detach_from_terminal()  # what is still written goes nowhere, and blocks nothing
        self.stop()
        os._exit(0)
