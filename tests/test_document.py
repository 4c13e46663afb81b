"""The session document (tui/document.py) without a screen: edit, dirty, problems, save,
open, rebase."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.session import Session, load_session, needs_restart
from tui.document import SessionDocument, is_shipped, rebased


def _session(base: Path) -> Session:
    s = Session(name="doc")
    s.base_dir = base
    s.data.corpus = "sample:synthetic"
    s.model.n_layer, s.model.n_head, s.model.n_embd, s.model.context = 1, 2, 32, 32
    return s


def test_an_edit_makes_the_document_dirty_and_an_edit_back_clean(tmp_path: Path) -> None:
    doc = SessionDocument(_session(tmp_path), tmp_path / "doc.toml")
    assert not doc.dirty and doc.problem_lines == []
    assert doc.edit("optim.lr", 2e-3) and doc.dirty
    assert not doc.edit("optim.lr", 2e-3)  # the same value: no change
    assert doc.edit("optim.lr", 1e-3) and not doc.dirty  # back to what the file has


def test_problems_are_found_by_dotted_path_and_form_errors_join_them(tmp_path: Path) -> None:
    doc = SessionDocument(_session(tmp_path))
    doc.edit("model.n_head", 5)
    assert "model.n_head" in doc.problems and "must divide" in doc.problems["model.n_head"]
    doc.set_form_error("optim.lr", "not a number: 'fast'")
    assert doc.problems["optim.lr"] == "not a number: 'fast'"
    assert any(line.startswith("optim.lr: ") for line in doc.problem_lines)
    doc.set_form_error("optim.lr", None)
    doc.edit("model.n_head", 2)
    assert doc.problems == {} and doc.problem_lines == []
    # A value checked without touching the session.
    assert doc.value_problem("model.n_head", 5) is not None
    assert doc.value_problem("model.n_head", 4) is None and doc.session.model.n_head == 2


def test_save_rebases_a_relative_corpus_and_makes_the_file_the_documents(
        tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "text.txt").write_text("hello world\n")
    session = _session(tmp_path / "old")
    session.data.corpus = "text.txt"
    doc = SessionDocument(session)
    doc.edit("optim.lr", 3e-3)
    assert doc.dirty and doc.shipped  # (no file yet: saving asks where)
    target = tmp_path / "mine.toml"
    written = doc.save(target)
    assert written == target.resolve() and doc.path == written and not doc.dirty
    assert doc.session.data.corpus == "old/text.txt"  # still the same corpus
    assert doc.folder() == target.parent.resolve()
    again = load_session(target)
    assert again.optim.lr == 3e-3 and again.resolve(again.data.corpus).read_text() == \
        "hello world\n"


def test_a_failed_save_changes_nothing(tmp_path: Path) -> None:
    doc = SessionDocument(_session(tmp_path))
    doc.edit("optim.lr", 3e-3)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OSError):
        doc.save(tmp_path / "a-file" / "x.toml")  # (a file where a folder must be)
    assert doc.dirty and doc.path is None


def test_open_replaces_the_document_and_forgets_form_errors(tmp_path: Path) -> None:
    doc = SessionDocument(_session(tmp_path))
    doc.set_form_error("optim.lr", "not a number")
    doc.edit("optim.lr", 5e-3)
    other = _session(tmp_path)
    other.name = "other"
    doc.open(other, tmp_path / "other.toml")
    assert doc.session.name == "other" and not doc.dirty
    assert doc.form_errors == {} and doc.problems == {}
    assert doc.path == (tmp_path / "other.toml").resolve()


def test_rebase_keeps_samples_and_absolute_paths(tmp_path: Path) -> None:
    s = _session(tmp_path)
    assert rebased(s, tmp_path / "x").data.corpus == "sample:synthetic"
    s.data.corpus = str(tmp_path / "abs.txt")
    assert rebased(s, tmp_path / "x").data.corpus == str(tmp_path / "abs.txt")
    assert s.base_dir == tmp_path  # (a copy: the session itself is left alone)


def test_shipped_paths_and_restart_rules(tmp_path: Path) -> None:
    import tui

    assert is_shipped(None) and is_shipped(Path(tui.__file__).parent / "x.toml")
    assert not is_shipped(tmp_path / "x.toml")
    s = _session(tmp_path)
    assert needs_restart(s, "model.n_embd") and not needs_restart(s, "generate.top_k")


def test_the_document_needs_neither_textual_nor_torch() -> None:
    code = ("import sys, tui.document; "
            "assert 'torch' not in sys.modules and 'textual' not in sys.modules, "
            "sorted(m for m in sys.modules if m in ('torch', 'textual'))")
    subprocess.run([sys.executable, "-c", code], check=True)
