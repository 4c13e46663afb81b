"""Choose a path: type it, or walk a directory tree. Used to open and save sessions and to
pick a corpus file or folder."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Input, Static

from tui.keymap import bind


class FilteredTree(DirectoryTree):
    """Folders and files with the given suffixes (all files if none); no hidden entries.
    Plain-text icons: emoji widths differ between terminals, and SSH sessions show it."""

    ICON_NODE = "▸ "
    ICON_NODE_EXPANDED = "▾ "
    ICON_FILE = "  "

    def __init__(self, path: Path, suffixes: tuple[str, ...] = (), **kwargs) -> None:
        super().__init__(path, **kwargs)
        self.suffixes = suffixes

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        for path in paths:
            if path.name.startswith("."):
                continue
            if not self.suffixes or path.is_dir() or path.suffix in self.suffixes:
                yield path


class PathPickerScreen(ModalScreen[Path | None]):
    """`pick`: "file" (an existing file), "any" (an existing file or folder) or "save" (a
    file that may not exist yet). `accept` may refuse a path with a message, shown in the
    dialog (e.g. a session file with problems); the dialog then stays open."""

    AUTO_FOCUS = "#path-input"
    BINDINGS = [bind("dialog.close", "cancel", "Cancel")]

    def __init__(self, title: str, start: Path, *, pick: str = "file",
                 suffixes: tuple[str, ...] = (), initial: str = "",
                 accept: Callable[[Path], str | None] | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        start = Path(start).expanduser()
        self.start = start if start.is_dir() else start.parent
        self.pick = pick
        self.suffixes = suffixes
        self.initial = initial
        self.accept = accept

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="picker-dialog"):
            yield Static(self.title_text, classes="dialog-title")
            yield Input(self.initial, compact=True, id="path-input",
                        placeholder="type a path, or pick below; enter to use it")
            yield Static("", id="path-error", classes="field-problem")
            yield FilteredTree(self.start, self.suffixes, id="path-tree")
            yield Static("enter uses the path · tab to the tree · esc cancels",
                         classes="dialog-keys")

    def _resolve(self, text: str) -> Path:
        path = Path(text.strip()).expanduser()
        return path if path.is_absolute() else (self.start / path)

    def _error(self, message: str) -> None:
        error = self.query_one("#path-error", Static)
        error.update(message)
        error.display = bool(message)

    def choose(self, text: str) -> None:
        if not text.strip():
            self._error("type a path or pick one below")
            return
        path = self._resolve(text)
        if self.pick == "file" and not path.is_file():
            self._error(f"{path}: no such file")
            return
        if self.pick == "any" and not path.exists():
            self._error(f"{path}: no such file or folder")
            return
        if self.pick == "save" and path.is_dir():
            self._error(f"{path}: is a folder; give a file name")
            return
        if self.accept is not None:
            problem = self.accept(path)
            if problem:
                self._error(problem)
                return
        self.dismiss(path)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.choose(event.value)

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.query_one("#path-input", Input).value = str(event.path)
        if self.pick == "save":
            self.query_one("#path-input", Input).focus()
        else:
            self.choose(str(event.path))

    def on_directory_tree_directory_selected(self,
                                             event: DirectoryTree.DirectorySelected) -> None:
        event.stop()
        text = str(event.path) + ("/" if self.pick == "save" else "")
        self.query_one("#path-input", Input).value = text

    def action_cancel(self) -> None:
        self.dismiss(None)
