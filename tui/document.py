"""The session being edited, as a document: the session, its file, the copy last saved,
whether it has unsaved edits, and the problems the validator finds in it.

Plain Python (no Textual, no torch): the app holds one `SessionDocument` and shows it; the
rules of editing, saving, opening and rebasing a session live here and are tested without a
screen (tests/test_document.py).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from core.estimate import session_fit_problem
from core.session import Session, save_session, set_field, validate


def package_dirs() -> list[Path]:
    """Folders of the installed llmlab packages: a session is never saved into them."""
    import core
    import sample_corpora
    import themes
    import tui

    return [Path(m.__file__).resolve().parent for m in (core, tui, themes, sample_corpora)]


def is_shipped(path: Path | None) -> bool:
    """Whether `path` is inside the installed package (or there is no path): a session there
    is saved elsewhere, and dialogs start in the working folder instead."""
    if path is None:
        return True
    resolved = Path(path).resolve()
    return any(resolved.is_relative_to(folder) for folder in package_dirs())


def rebased(session: Session, new_base: Path) -> Session:
    """A copy of `session` as it must be written to a file in `new_base`: a relative corpus
    path (relative to the old folder) stays pointing at the same corpus."""
    out = copy.deepcopy(session)
    corpus = out.data.corpus
    if not corpus.startswith("sample:") and not Path(corpus).expanduser().is_absolute():
        target = session.resolve(corpus).resolve()
        try:
            out.data.corpus = str(target.relative_to(new_base))
        except ValueError:
            out.data.corpus = str(target)
    out.base_dir = new_base
    return out


class SessionDocument:
    """One session being edited. `problems` maps a dotted path to its first problem (the
    validator's, or a form's text that is not a value); `problem_lines` lists them all, with
    a line for a model too big for memory (no one field to blame)."""

    def __init__(self, session: Session, path: Path | None = None) -> None:
        self.form_errors: dict[str, str] = {}  # dotted path -> why the typed text is no value
        self.vocab_size: int | None = None  # of the corpus once read (the memory check)
        self.problems: dict[str, str] = {}
        self.problem_lines: list[str] = []
        self._take(session, path)

    def _take(self, session: Session, path: Path | None) -> None:
        self.session = session
        self.path = Path(path) if path else None
        self.saved = copy.deepcopy(session)
        self.saved_base = session.base_dir
        self.check()

    @property
    def dirty(self) -> bool:
        """The session differs from the file (or was never saved)."""
        return self.session != self.saved or self.session.base_dir != self.saved_base

    @property
    def shipped(self) -> bool:
        """The file is one of the package's (or there is none): save asks where."""
        return is_shipped(self.path)

    def folder(self) -> Path:
        """Where a dialog for this session starts: its file's folder, else the working one."""
        return self.path.parent if self.path and not self.shipped else Path.cwd()

    # ------------------------------------------------------------------ editing

    def edit(self, path: str, value: Any) -> bool:
        """Set one field; True if it changed (then the problems are checked again)."""
        if not set_field(self.session, path, value):
            return False
        self.check()
        return True

    def set_form_error(self, path: str, error: str | None) -> None:
        """A form holds text that is no value of `path` (None: it is fine again)."""
        if error:
            self.form_errors[path] = error
        else:
            self.form_errors.pop(path, None)
        self.check()

    def check(self) -> list[str]:
        """Validate the whole session again; the problem lines."""
        lines = validate(self.session)
        self.problems = {}
        for line in lines:
            path, _, problem = line.partition(": ")
            self.problems.setdefault(path, problem)
        for path, error in self.form_errors.items():
            self.problems[path] = error
        self.problem_lines = lines + [f"{p}: {e}" for p, e in self.form_errors.items()]
        if not lines and (too_big := self.memory_problem()):
            self.problem_lines.append(too_big)
        return self.problem_lines

    def memory_problem(self) -> str | None:
        """The model cannot fit in memory for training (with the corpus's vocabulary once
        read)."""
        return session_fit_problem(self.session, self.vocab_size)

    def value_problem(self, path: str, value: Any) -> str | None:
        """Why `value` cannot be `path`, as the validator says (None: it can); the session
        is left alone."""
        trial = copy.deepcopy(self.session)
        set_field(trial, path, value)
        for line in validate(trial):
            where, _, problem = line.partition(": ")
            if where == path:
                return problem
        return None

    # ------------------------------------------------------------------ files

    def save(self, path: Path) -> Path:
        """Write the session to `path` (rebased to its folder) and make it the document's
        file; OSError if it cannot be written (then nothing changes)."""
        path = Path(path).expanduser().resolve()
        session = rebased(self.session, path.parent)
        save_session(session, path)
        self._take(session, path)
        return path

    def open(self, session: Session, path: Path | None) -> None:
        """Replace the document with a session read from `path`: nothing unsaved is kept."""
        self.form_errors = {}
        self._take(session, Path(path).resolve() if path else None)
