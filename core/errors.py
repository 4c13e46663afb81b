"""User-facing errors.

Every problem a user can cause (a bad session, a bad corpus, a corrupt checkpoint) is raised as
an `LlmlabError` whose `str()` is one line naming the thing and the cause. The CLI prints that
line and exits 2; the TUI shows it as a notification. Anything else is a bug.
"""

from __future__ import annotations

import errno


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


class DiskFault(LlmlabError):
    """A write the machine refused (disk full, a read-only or vanished folder): neither the
    user's input nor a bug. A run stopped by one keeps its checkpoints and resumes once the
    disk is fixed; `cause` ("disk full", ...) is what its status says."""

    def __init__(self, message: str, cause: str):
        super().__init__(message)
        self.cause = cause


class CheckpointDiskFault(DiskFault, CheckpointError):
    """A checkpoint the disk refused to take (the earlier ones are intact)."""


_CAUSES = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded",
           errno.EFBIG: "file too large", errno.EROFS: "read-only file system"}


def disk_fault(e: OSError, doing: str, where: object = None,
               kind: type[DiskFault] = DiskFault) -> DiskFault:
    """`where: cannot <doing>: <cause>` in one line, from the OSError of a write."""
    cause = _CAUSES.get(e.errno, (e.strerror or type(e).__name__).lower())
    where = where if where is not None else (e.filename or "?")
    return kind(f"{where}: cannot {doing}: {cause}", cause)
