"""User-facing errors.

Every problem a user can cause (a bad session, a bad corpus, a corrupt checkpoint) is raised as
an `LlmlabError` whose `str()` is one line naming the thing and the cause. The CLI prints that
line and exits 2; the TUI shows it as a notification. Anything else is a bug.
"""

from __future__ import annotations


class LlmlabError(Exception):
    """A problem with the user's input, explained in one line."""


class SessionError(LlmlabError):
    """A session file (or override) that is not valid; holds every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class CorpusError(LlmlabError):
    """A corpus that cannot be read as text."""


class TokenizerError(LlmlabError):
    """A tokenizer that cannot be built, saved or loaded."""


class CheckpointError(LlmlabError):
    """A checkpoint that cannot be saved or loaded (missing, damaged, or for another model)."""
