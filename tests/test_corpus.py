"""Corpora: files, folders and samples, validation with one-line errors, and chunked reading."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

import core.corpus
from core.corpus import Corpus, open_corpus
from core.dataset import load_dataset
from core.errors import CorpusError, LlmlabError
from core.samples import SAMPLES
from core.session import DataConfig


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def snapshot(folder: Path) -> set[tuple[str, int]]:
    """Every file and folder under `folder` with its size, to notice anything written."""
    return {(str(p.relative_to(folder)), p.stat().st_size if p.is_file() else -1)
            for p in folder.rglob("*")}


def assert_one_line(err: Exception, *needles: str) -> str:
    msg = str(err)
    assert "\n" not in msg and "\r" not in msg, msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    return msg


# --------------------------------------------------------------------------- good corpora

def test_single_file_text_is_read_exactly(tmp_path: Path) -> None:
    text = "First line\r\nSecond — with ünïcödé 中文 🎉\n\tindented\nno trailing newline"
    path = write_bytes(tmp_path / "book.txt", text.encode("utf-8"))

    corpus = open_corpus(str(path))

    assert corpus.files == (path,)
    assert corpus.n_bytes == len(text.encode("utf-8"))
    assert corpus.read_text() == text
    assert corpus.head(10) == text[:10]
    assert corpus.head(10_000) == text


def test_relative_path_resolves_against_base_dir(tmp_path: Path) -> None:
    write_bytes(tmp_path / "data" / "t.txt", b"hello\n")
    corpus = open_corpus("data/t.txt", base_dir=tmp_path)
    assert corpus.files == (tmp_path / "data" / "t.txt",)
    assert corpus.read_text() == "hello\n"


def make_tree(root: Path, order: list[str]) -> None:
    """A folder with text files, a binary file, hidden files and an empty file."""
    contents = {
        "b.txt": b"second\n",
        "a.txt": b"first",  # no trailing newline: a newline must be inserted after it
        "m/x.md": b"middle",  # ditto, and it sits in a sub-folder
        "m/deeper/y.txt": b"deep\n",
        "z.txt": b"last",
        "picture.png": b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0",
        "m/data.bin": bytes(range(256)),
        ".hidden.txt": b"secret\n",
        ".git/config": b"[core]\n",
        "m/.cache/notes.txt": b"cached\n",
        "empty.txt": b"",
    }
    for name in order:
        write_bytes(root / name, contents[name])


TREE_NAMES = ["b.txt", "a.txt", "m/x.md", "m/deeper/y.txt", "z.txt", "picture.png",
              "m/data.bin", ".hidden.txt", ".git/config", "m/.cache/notes.txt", "empty.txt"]


def test_folder_is_read_recursively_text_files_only_in_sorted_order(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    make_tree(root, TREE_NAMES)

    corpus = open_corpus(str(root))

    rel = [str(p.relative_to(root)) for p in corpus.files]
    assert rel == ["a.txt", "b.txt", "m/deeper/y.txt", "m/x.md", "z.txt"]
    assert corpus.read_text() == "first\nsecond\ndeep\nmiddle\nlast"
    expected_bytes = sum((root / r).stat().st_size for r in rel)
    assert corpus.n_bytes == expected_bytes


def test_folder_order_and_digest_do_not_depend_on_creation_order(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    make_tree(one, TREE_NAMES)
    make_tree(two, list(reversed(TREE_NAMES)))

    c1, c2 = open_corpus(str(one)), open_corpus(str(two))

    assert c1.read_text() == c2.read_text()
    assert c1.digest == c2.digest
    assert open_corpus(str(one)).digest == c1.digest


def test_digest_changes_with_content_of_same_size(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "t.txt", b"abc\n")
    before = open_corpus(str(path)).digest
    path.write_bytes(b"abd\n")
    assert open_corpus(str(path)).digest != before


def test_files_are_joined_with_a_newline_only_where_missing(tmp_path: Path) -> None:
    write_bytes(tmp_path / "c/1.txt", b"ends with newline\n")
    write_bytes(tmp_path / "c/2.txt", b"no newline")
    write_bytes(tmp_path / "c/3.txt", b"crlf\r\n")
    write_bytes(tmp_path / "c/4.txt", b"tail")
    corpus = open_corpus(str(tmp_path / "c"))
    assert corpus.read_text() == "ends with newline\nno newline\ncrlf\r\ntail"


def test_unknown_sample_lists_the_samples() -> None:
    with pytest.raises(CorpusError) as info:
        open_corpus("sample:no-such-thing")
    assert_one_line(info.value, "sample:no-such-thing", *SAMPLES)


# --------------------------------------------------------------------------- bad corpora

def _missing(tmp: Path, mp: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    path = tmp / "does-not-exist.txt"
    return path, path, "no such file"


def _folder_without_text(tmp: Path, mp: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    root = tmp / "no-text"
    write_bytes(root / "blob.bin", b"\0\1\2\3")
    write_bytes(root / "empty.txt", b"")
    write_bytes(root / ".hidden.txt", b"hidden text\n")
    write_bytes(root / "sub" / "image.png", b"\x89PNG\0\0")
    return root, root, "no non-empty text files"


def _empty_folder(tmp: Path, mp: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    root = tmp / "nothing"
    root.mkdir()
    return root, root, "no non-empty text files"


def _empty_file(tmp: Path, mp: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    path = write_bytes(tmp / "empty.txt", b"")
    return path, path, "file is empty"


def _binary_file(tmp: Path, mp: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    path = write_bytes(tmp / "program.txt", b"ELF\x7f\0\0\1hello")
    return path, path, "binary"


def _invalid_utf8(tmp: Path, mp: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    path = write_bytes(tmp / "latin1.txt", "café au lait\n".encode("latin-1"))
    return path, path, "invalid UTF-8 at byte offset 3 "


def _invalid_utf8_in_folder(tmp: Path, mp: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    write_bytes(tmp / "mixed" / "good.txt", b"fine text\n")
    bad = write_bytes(tmp / "mixed" / "sub" / "bad.txt", b"ok\n\xc3\x28 broken\n")
    return tmp / "mixed", bad, "invalid UTF-8 at byte offset 3 "


def _deny(mp: pytest.MonkeyPatch, target: Path) -> None:
    real_open = Path.open

    def guarded_open(self, *args, **kwargs):
        if Path(self) == target:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    mp.setattr(Path, "open", guarded_open)


def _unreadable_file(tmp: Path, mp: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    path = write_bytes(tmp / "secret.txt", b"you cannot read me\n")
    _deny(mp, path)
    return path, path, "permission denied"


def _unreadable_file_in_folder(tmp: Path, mp: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    write_bytes(tmp / "shared" / "a.txt", b"readable\n")
    path = write_bytes(tmp / "shared" / "b.txt", b"you cannot read me\n")
    _deny(mp, path)
    return tmp / "shared", path, "permission denied"


def _fifo(tmp: Path, mp: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    path = tmp / "pipe"
    os.mkfifo(path)
    return path, path, "not a regular file"


BAD_CORPORA: dict[str, Callable[[Path, pytest.MonkeyPatch], tuple[Path, Path, str]]] = {
    "missing": _missing,
    "folder-without-text": _folder_without_text,
    "empty-folder": _empty_folder,
    "empty-file": _empty_file,
    "binary-file": _binary_file,
    "invalid-utf8": _invalid_utf8,
    "invalid-utf8-in-folder": _invalid_utf8_in_folder,
    "unreadable-file": _unreadable_file,
    "unreadable-file-in-folder": _unreadable_file_in_folder,
    "fifo": _fifo,
}


@pytest.mark.parametrize("case", BAD_CORPORA)
def test_bad_corpus_gives_one_line_error_and_writes_nothing(
        case: str, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    spec, named, cause = BAD_CORPORA[case](work, monkeypatch)
    before = snapshot(work)

    with pytest.raises(CorpusError) as info:
        open_corpus(str(spec))
    assert type(info.value) is CorpusError
    assert_one_line(info.value, str(named), cause)

    with pytest.raises(CorpusError) as again:
        load_dataset(DataConfig(corpus=str(spec), tokenizer="char"))
    assert str(again.value) == str(info.value)

    assert not cache_dir.exists() or not any(cache_dir.iterdir())
    assert snapshot(work) == before


def test_corpus_error_is_a_user_error() -> None:
    assert issubclass(CorpusError, LlmlabError)


# --------------------------------------------------------------------------- UTF-8 across blocks

@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(core.corpus, "BLOCK_BYTES", 64)
    return 64


@pytest.mark.parametrize("where", [0, 5, 63, 64, 65, 127, 128, 200, 1000])
def test_invalid_byte_offset_is_exact_in_any_block(
        where: int, small_blocks: int, tmp_path: Path) -> None:
    data = bytearray(b"abcdefgh\n" * 130)
    data[where] = 0xFF
    path = write_bytes(tmp_path / "t.txt", bytes(data))
    with pytest.raises(CorpusError) as info:
        open_corpus(str(path))
    assert_one_line(info.value, str(path), f"invalid UTF-8 at byte offset {where} ")


def test_invalid_byte_beyond_the_first_real_block(tmp_path: Path) -> None:
    where = core.corpus.BLOCK_BYTES + 12_345
    data = bytearray(b"x" * (where + 100))
    data[where] = 0x80
    path = write_bytes(tmp_path / "big.txt", bytes(data))
    with pytest.raises(CorpusError) as info:
        open_corpus(str(path))
    assert_one_line(info.value, str(path), f"byte offset {where} ")


@pytest.mark.parametrize("char", ["é", "中", "🎉"])
@pytest.mark.parametrize("start", [61, 62, 63, 64, 127])
def test_valid_character_split_across_blocks_is_accepted(
        char: str, start: int, small_blocks: int, tmp_path: Path) -> None:
    text = "a" * start + char + "b" * 100 + char + "\n"
    path = write_bytes(tmp_path / "t.txt", text.encode("utf-8"))
    corpus = open_corpus(str(path))
    assert corpus.read_text() == text
    assert corpus.n_bytes == len(text.encode("utf-8"))


@pytest.mark.parametrize("start", [62, 63])
def test_broken_character_split_across_blocks_reports_its_first_byte(
        start: int, small_blocks: int, tmp_path: Path) -> None:
    data = b"a" * start + "中".encode()[:2] + b"A rest of the line\n"
    path = write_bytes(tmp_path / "t.txt", data)
    with pytest.raises(CorpusError) as info:
        open_corpus(str(path))
    assert_one_line(info.value, f"byte offset {start} ")


@pytest.mark.parametrize("size", [10, 63, 64, 65])
def test_truncated_character_at_end_of_file(size: int, small_blocks: int, tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "t.txt", b"a" * size + "🎉".encode()[:3])
    with pytest.raises(CorpusError) as info:
        open_corpus(str(path))
    assert_one_line(info.value, str(path), f"byte offset {size} ")


def test_replace_accepts_invalid_utf8(tmp_path: Path, cache_dir: Path) -> None:
    path = write_bytes(tmp_path / "t.txt", b"good \xff\xfe bad \xc3 end\n")
    with pytest.raises(CorpusError):
        open_corpus(str(path))

    corpus = open_corpus(str(path), encoding_errors="replace")
    text = corpus.read_text()
    assert text == "good \ufffd\ufffd bad \ufffd end\n"

    ds = load_dataset(DataConfig(corpus=str(path), tokenizer="char", encoding_errors="replace"))
    assert ds.tokenizer.decode(ds.tokens) == text


# --------------------------------------------------------------------------- chunked reading

def random_lines(rng: random.Random, n_lines: int, max_len: int) -> str:
    alphabet = "abcdefghij klmnop中文é🎉\r\t"
    return "".join("".join(rng.choice(alphabet) for _ in range(rng.randrange(max_len))) + "\n"
                   for _ in range(n_lines))


@pytest.mark.parametrize("chunk_chars", [8, 31, 64, 1000])
def test_chunks_join_to_the_text_and_end_at_line_breaks(chunk_chars: int, tmp_path: Path) -> None:
    rng = random.Random(chunk_chars)
    text = random_lines(rng, 300, chunk_chars) + "last line without newline"
    write_bytes(tmp_path / "c" / "a.txt", text.encode("utf-8"))
    write_bytes(tmp_path / "c" / "b.txt", random_lines(rng, 50, chunk_chars).encode("utf-8"))
    corpus = open_corpus(str(tmp_path / "c"))

    chunks = list(corpus.iter_chunks(chunk_chars=chunk_chars))

    assert "".join(chunks) == corpus.read_text()
    assert corpus.read_text().startswith(text + "\n")
    if chunk_chars < 1000:
        assert len(chunks) > 10
    for chunk in chunks[:-1]:
        # only a line longer than a chunk may be cut before its line break
        assert chunk.endswith("\n") or ("\n" not in chunk and len(chunk) >= chunk_chars), \
            repr(chunk)
    for chunk in chunks:
        assert 0 < len(chunk) < 2 * chunk_chars


def test_a_line_longer_than_a_chunk_is_split(tmp_path: Path) -> None:
    text = "short\n" + "x" * 250 + "\nafter\n"
    path = write_bytes(tmp_path / "t.txt", text.encode())
    chunks = list(open_corpus(str(path)).iter_chunks(chunk_chars=32))
    assert "".join(chunks) == text
    assert max(len(c) for c in chunks) < 64
    for chunk in chunks[:-1]:
        # a chunk may only stop before a line break inside an over-long line
        assert chunk.endswith("\n") or ("\n" not in chunk and len(chunk) >= 32), repr(chunk)


def test_crlf_is_never_split_between_chunks(tmp_path: Path) -> None:
    text = "".join(f"line {i}\r\n" for i in range(200))
    path = write_bytes(tmp_path / "t.txt", text.encode())
    chunks = list(open_corpus(str(path)).iter_chunks(chunk_chars=16))
    assert "".join(chunks) == text
    assert all(c.endswith("\r\n") for c in chunks)


def test_corpus_is_an_immutable_value(tmp_path: Path) -> None:
    corpus = open_corpus(str(write_bytes(tmp_path / "t.txt", b"abc\n")))
    assert isinstance(corpus, Corpus)
    with pytest.raises(AttributeError):
        corpus.digest = "x"  # type: ignore[misc]


def test_shipped_samples_open_and_synthetic_entropy_is_known():
    from core.corpus import open_corpus
    from core.samples import TEXT_SAMPLES, synthetic_entropy_rate

    for name in TEXT_SAMPLES:
        corpus = open_corpus(f"sample:{name}")
        assert corpus.n_bytes > 300_000, name
    assert 0.5 < synthetic_entropy_rate() < 1.5
    assert "def " in open_corpus("sample:python-stdlib").head(20_000)
