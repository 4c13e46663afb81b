"""The app's session actions: edits from the panes, showing the session everywhere, save and
open with their dialogs.

The rules (what an edit changes, what is dirty, how a saved session is rebased) are the
document's (`tui.document`); this mixin of `tui.app.LlmlabApp` adds the screen: dialogs,
notifications and handing the document down to every pane.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import LlmlabError, SessionError
from core.session import Session, live_values, load_session
from tui.commands import PaletteCommand
from tui.document import is_shipped
from tui.messages import CorpusFailed, CorpusLoaded, FieldError, SessionEdited
from tui.screens.confirm import ConfirmScreen
from tui.screens.path_picker import PathPickerScreen
from tui.widgets.field_row import FieldRow
from tui.widgets.title_bar import TitleBar


class SessionActions:
    """Edit, show, save and open the app's `document` (a mixin of the app: `self` is it)."""

    def session_commands(self) -> list[PaletteCommand]:
        """The palette's session commands."""
        c = PaletteCommand
        return [
            c("Session: save", "write the session TOML (ctrl+s)", self.action_save),
            c("Session: save as", "write the session TOML to a new path", self.action_save_as),
            c("Session: open", "open a session TOML (ctrl+o)", self.action_open),
        ]

    def on_session_edited(self, message: SessionEdited) -> None:
        self.edit(message.path, message.value, final=message.final)

    def on_field_error(self, message: FieldError) -> None:
        self.document.set_form_error(message.path, message.error)
        self.session_changed()

    def edit(self, path: str, value: Any, final: bool = True) -> None:
        """Change one field of the session, as if typed in the form."""
        if self.document.edit(path, value):
            self.session_changed()
        if final and self.training.busy:
            self._apply_to_run(path, value)

    def session_changed(self, force: bool = False) -> None:
        """Validate and show the session everywhere after any change (`force`: also over
        text being typed, for a session replaced as a whole)."""
        doc = self.document
        doc.check()
        self.session_path = doc.path
        for pane in self.panes():
            if pane.built:  # (one not built yet is shown the session when it is)
                pane.show_session(doc, force)
        self._show_summary()
        busy = self.client_busy()  # (a run shows its own live values)
        self.train_pane.show_hparams(self.live if busy else live_values(doc.session))
        title = self.query_one(TitleBar)
        title.session_name = doc.session.name
        title.dirty = doc.dirty

    def _show_summary(self) -> None:
        view = self.corpus
        self.model_pane.show_summary(view.vocab_size if view else None,
                                     view.train_tokens if view else None,
                                     len(self.document.problem_lines),
                                     self.document.memory_problem())

    def on_corpus_loaded(self, message: CorpusLoaded) -> None:
        self.corpus = message.view
        self.document.vocab_size = message.view.vocab_size
        if self._title_bar() is not None:  # (not while the app shuts down)
            self.session_changed()  # (the real vocabulary: the memory check may change)

    def on_corpus_failed(self, message: CorpusFailed) -> None:
        self.corpus = None
        self.document.vocab_size = None
        if self._title_bar() is not None:
            self._show_summary()

    def _problem_notice(self, doing: str) -> bool:
        """Refuse `doing` while the session has problems (True if refused)."""
        lines = self.document.problem_lines
        if not lines:
            return False
        n = len(lines)
        self.notify(f"cannot {doing}: {n} problem{'s' * (n != 1)} in the session, first: "
                    f"{lines[0]}", severity="error", timeout=8)
        return True

    # ------------------------------------------------------------------ save

    def action_save(self) -> None:
        self.save(ask=False)

    def action_save_as(self) -> None:
        self.save(ask=True)

    def save(self, ask: bool) -> None:
        if self._problem_notice("save"):
            return
        if ask or self.document.shipped:
            self._ask_save_path()
        else:
            assert self.document.path is not None
            self.write_session(self.document.path)

    def _ask_save_path(self) -> None:
        here = self.document.folder()

        def chosen(path: Path | None) -> None:
            if path is None:
                return
            if path.suffix != ".toml":
                path = path.with_name(path.name + ".toml")
            if path.exists() and path.resolve() != (self.document.path or Path()).resolve():
                self.push_screen(ConfirmScreen(f"{path} exists. Replace it?", yes="replace",
                                               no="cancel"),
                                 lambda yes: self.write_session(path) if yes else None)
            else:
                self.write_session(path)

        def accept(path: Path) -> str | None:
            if is_shipped(path):
                return "that is inside the llmlab package; choose a folder of your own"
            return None

        self.push_screen(PathPickerScreen("Save the session as", here, pick="save",
                                          suffixes=(".toml",),
                                          initial=str(here / f"{self.session.name}.toml"),
                                          accept=accept), chosen)

    def write_session(self, path: Path) -> bool:
        try:
            path = self.document.save(path)
        except OSError as e:
            self.notify(f"{path}: could not save ({e.strerror or e})", severity="error")
            return False
        self.session_changed()
        self.notify(f"saved {path}", timeout=4)
        return True

    # ------------------------------------------------------------------ open

    def action_open(self) -> None:
        if self.training.busy:
            self.notify(f"stop the training ({self._key('train.stop')}) before opening another "
                        "session",
                        severity="warning")
            return
        if self.document.dirty:
            self.push_screen(ConfirmScreen(f"Discard the unsaved edits to "
                                           f"'{self.session.name}'?", yes="discard",
                                           no="keep editing"),
                             lambda yes: self._pick_session() if yes else None)
        else:
            self._pick_session()

    def _pick_session(self) -> None:
        opened: dict[str, Session] = {}

        def accept(path: Path) -> str | None:
            try:
                opened["session"] = load_session(path)
            except SessionError as e:
                shown = e.problems[:3]
                more = len(e.problems) - len(shown)
                return "\n".join(shown) + (f"\n(and {more} more)" if more > 0 else "")
            except LlmlabError as e:
                return str(e)
            return None

        def chosen(path: Path | None) -> None:
            if path is not None and "session" in opened:
                self.open_session(opened["session"], path)

        self.push_screen(PathPickerScreen("Open a session", self.document.folder(),
                                          pick="file", suffixes=(".toml",), accept=accept),
                         chosen)

    def open_session(self, session: Session, path: Path | None) -> None:
        self.document.open(session, path)
        for row in self.query(FieldRow):
            row.clear_error()
        self.session_changed(force=True)
        self.train_pane.show_newest_run(session)
        self.notify(f"opened {path}", timeout=4)
