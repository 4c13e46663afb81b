"""Corpora: text from a file, a folder of text files, or a shipped sample.

`open_corpus` checks the whole corpus in one streaming pass before anything else happens
(existence, permissions, emptiness, binary content, UTF-8 validity) and fingerprints its content
on the way, so a bad corpus fails with one line naming the file and the cause, and a good one
gets a content digest that keys the token cache. Nothing is ever written here.

Text is then read in line-aligned chunks (`iter_chunks`), so a corpus larger than memory is
tokenized piece by piece.
"""

from __future__ import annotations

import codecs
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import CorpusError
from core.samples import SAMPLE_PREFIX, sample_files

BLOCK_BYTES = 1 << 20  # read granularity for the validation/fingerprint pass
CHUNK_CHARS = 1 << 22  # target size of the text chunks handed to tokenizers
SNIFF_BYTES = 8192  # how much of a file is inspected for NUL bytes


@dataclass(frozen=True)
class Corpus:
    """A validated corpus: which files, how many bytes, and a digest of their content."""

    source: str
    files: tuple[Path, ...]
    n_bytes: int
    digest: str
    encoding_errors: str = "strict"

    def iter_chunks(self, chunk_chars: int = CHUNK_CHARS) -> Iterator[str]:
        """The corpus text in pieces of roughly `chunk_chars`, each ending at a line break.

        Files are joined with a newline between them when a file does not end with one.
        """
        for i, path in enumerate(self.files):
            # The joining newline goes at the end of the file's last chunk, not in a chunk of
            # its own, so that every chunk but the very last ends at a line break.
            last = i + 1 == len(self.files)
            sep = "" if last or _ends_with_newline(path) else "\n"
            held = None
            for chunk in _file_chunks(path, chunk_chars, self.encoding_errors):
                if held is not None:
                    yield held
                held = chunk
            if held is not None:
                yield held + sep

    def read_text(self) -> str:
        """The whole text at once; for small corpora and previews."""
        return "".join(self.iter_chunks())

    def head(self, n_chars: int) -> str:
        """The first `n_chars` characters, reading no more than needed."""
        parts, have = [], 0
        for chunk in self.iter_chunks(chunk_chars=max(n_chars, 1024)):
            parts.append(chunk)
            have += len(chunk)
            if have >= n_chars:
                break
        return "".join(parts)[:n_chars]


def open_corpus(spec: str, base_dir: Path | None = None,
                encoding_errors: str = "strict") -> Corpus:
    """Resolve and validate `spec` (a path or sample:NAME); raise CorpusError on bad input."""
    if spec.startswith(SAMPLE_PREFIX):
        files = sample_files(spec[len(SAMPLE_PREFIX):])
        label = spec
    else:
        path = Path(spec).expanduser()
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        files = _files_at(path)
        label = str(path)
    digest = hashlib.blake2b(digest_size=16)
    n_bytes = 0
    for path in files:
        digest.update(f"{path.name}\0".encode())
        n_bytes += _check_file(path, encoding_errors, digest)
    if n_bytes == 0:
        raise CorpusError(f"{label}: corpus is empty")
    return Corpus(label, tuple(files), n_bytes, digest.hexdigest(), encoding_errors)


def check_corpus(spec: str, base_dir: Path | None = None) -> int:
    """What `open_corpus` would refuse first, from cheap checks only (names, permissions and
    each file's first bytes; no full read): raise CorpusError with the cause. Returns the
    files' bytes plus one per file: no tokenizer makes more tokens than that (a char, a word
    or a BPE token is at least a byte; a separator per file), a bound for split sizes."""
    if spec.startswith(SAMPLE_PREFIX):
        return _upper_bound(sample_files(spec[len(SAMPLE_PREFIX):]))
    path = Path(spec).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    files = _files_at(path)  # (a folder's: already sniffed, only its text files)
    for file in files:
        if not os.access(file, os.R_OK):
            raise CorpusError(f"{file}: permission denied")
    if path.is_file() and not _looks_like_text(path):
        cause = "file is empty" if path.stat().st_size == 0 else "binary file, not text"
        raise CorpusError(f"{path}: {cause}")
    return _upper_bound(files)


def _upper_bound(files: list[Path]) -> int:
    try:
        return sum(f.stat().st_size + 1 for f in files)
    except OSError as e:
        raise CorpusError(f"{e.filename}: {e.strerror}") from e


def _files_at(path: Path) -> list[Path]:
    if not path.exists():
        raise CorpusError(f"{path}: no such file or folder")
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise CorpusError(f"{path}: not a regular file or folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise CorpusError(f"{path}: permission denied")
    files = [p for p in _walk_sorted(path) if _looks_like_text(p)]
    if not files:
        raise CorpusError(f"{path}: folder has no non-empty text files")
    return files


def _walk_sorted(root: Path) -> Iterator[Path]:
    """Regular files under root, depth-first in sorted order, skipping hidden entries."""
    try:
        entries = sorted(root.iterdir(), key=lambda p: p.name)
    except PermissionError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and not entry.is_symlink():
            yield from _walk_sorted(entry)
        elif entry.is_file():
            yield entry


def _looks_like_text(path: Path) -> bool:
    """A folder member counts as text when it is non-empty and has no NUL in its first bytes."""
    try:
        with path.open("rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError:
        return True  # keep it, so the check below reports why it cannot be read
    return bool(head) and b"\0" not in head


def _check_file(path: Path, encoding_errors: str, digest) -> int:
    """Stream one file: raise CorpusError if it is not readable UTF-8 text; return its size."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors=encoding_errors)
    offset = 0
    try:
        with path.open("rb") as f:
            while block := f.read(BLOCK_BYTES):
                if offset == 0 and b"\0" in block[:SNIFF_BYTES]:
                    at = block.index(b"\0")
                    raise CorpusError(f"{path}: binary file, not text (NUL byte at offset {at})")
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as e:
                    raise CorpusError(_utf8_message(path, offset - pending + e.start)) from None
                digest.update(block)
                offset += len(block)
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError as e:
                at = offset - len(decoder.getstate()[0]) + e.start
                raise CorpusError(_utf8_message(path, at)) from None
    except PermissionError:
        raise CorpusError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise CorpusError(f"{path}: is a folder") from None
    except OSError as e:
        raise CorpusError(f"{path}: cannot read ({e.strerror or e})") from None
    if offset == 0 and path.is_file():
        raise CorpusError(f"{path}: file is empty")
    return offset


def _utf8_message(path: Path, offset: int) -> str:
    return (f"{path}: invalid UTF-8 at byte offset {offset} "
            f"(set data.encoding_errors = \"replace\" to replace bad bytes)")


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _file_chunks(path: Path, chunk_chars: int, encoding_errors: str) -> Iterator[str]:
    """Line-aligned text chunks of one file (a line longer than a chunk is split)."""
    with path.open("r", encoding="utf-8", errors=encoding_errors, newline="") as f:
        carry = ""
        while block := f.read(chunk_chars):
            text = carry + block
            cut = text.rfind("\n") + 1
            if cut == 0 and len(text) >= chunk_chars:
                cut = len(text)  # one enormous line: split it anyway
            carry = text[cut:]
            if cut:
                yield text[:cut]
        if carry:
            yield carry
