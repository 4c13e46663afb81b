"""Files we write atomically and files we read from folders someone else may have written.

Writes: data goes to a temporary file in the same folder, is flushed and fsynced, and then
renamed over the target (rename is atomic on POSIX); the folder is fsynced so the rename
itself survives a power cut.

Reads: a run folder, a model folder or a session may come from a colleague or a shared
disk, so a small metadata file is read with `read_small_file`: only a regular file (never a
FIFO that blocks, a device like /dev/zero that never ends, or a socket), and never more
than a stated size.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode(path))  # mkstemp makes 0600; keep the usual mode instead
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def make_temp_folder(parent: str | os.PathLike, prefix: str) -> Path:
    """A new, uniquely named folder in `parent` with the user's usual permissions (0777 less
    the umask): mkdtemp's 0700 would stay on the folder it is renamed to."""
    parent = Path(parent)
    while True:
        folder = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue


def fsync_file(path: str | os.PathLike) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_mode(path: Path) -> int:
    """The mode of the file being replaced, or 0666 less the umask for a new one."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def jsonable(value: Any) -> Any:
    """JSON for numpy/torch scalars and paths that slip into metadata and records."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# Caps for the small files llmlab reads back; far above what llmlab itself writes.
SMALL_FILE_LIMIT = 16 << 20  # session.toml, run.json, meta.json, compressed.json
METRICS_FILE_LIMIT = 1 << 30  # metrics.jsonl: 1M records are ~150 MB
TOKENIZER_FILE_LIMIT = 256 << 20  # tokenizer.json: 4M words (tokenizers.MAX_VOCAB) fit


class UnreadableFile(OSError):
    """A file that is not a regular file, or is larger than its cap; `str()` says which."""


def read_small_file(path: str | os.PathLike, limit: int = SMALL_FILE_LIMIT) -> bytes:
    """The bytes of a regular file of at most `limit` bytes.

    The file is opened without blocking (a FIFO would otherwise wait for a writer forever)
    and checked with fstat on the open descriptor, so a symlink swapped in between cannot
    slip past; at most limit + 1 bytes are ever read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(f"{path}: not a regular file ({_kind(info.st_mode)})")
        if info.st_size > limit:
            raise UnreadableFile(f"{path}: {info.st_size:,} bytes, more than the "
                                 f"{limit:,} a file of this kind may have")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # grew while we read it
        raise UnreadableFile(f"{path}: more than the {limit:,} bytes a file of this kind may have")
    return data


def read_small_text(path: str | os.PathLike, limit: int = SMALL_FILE_LIMIT) -> str:
    """`read_small_file` decoded as UTF-8 (UnicodeDecodeError on bad bytes)."""
    return read_small_file(path, limit).decode("utf-8")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a plain file"
