"""The token dataset: a corpus tokenized once, cached on disk, split, and batched.

Token ids live in a flat numpy memmap (uint16 when the vocabulary fits, else uint32) inside a
cache folder keyed by the corpus content and the tokenizer settings. Reopening the same corpus
is a cache hit: nothing is re-tokenized and the ids are paged in only as batches touch them, so
a large corpus never sits in memory twice. A changed file changes the key: a miss.

A cache entry is built in a temporary folder and renamed into place, so an interrupted build
leaves nothing that could be mistaken for a finished one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: age alone decides
    fcntl = None  # type: ignore[assignment]

from core.corpus import Corpus, open_corpus
from core.errors import LlmlabError, disk_fault
from core.fileio import make_temp_folder
from core.folds import fold_spans
from core.session import DataConfig
from core.tokenizers import Tokenizer, load_tokenizer, train_tokenizer

CACHE_VERSION = 1  # bump when the cached format or a tokenizer's behaviour changes
TOKENS_FILE = "tokens.bin"
META_FILE = "meta.json"
SPLITS = ("train", "val", "test")

Progress = Callable[[str, float], None]  # (phase, fraction done) for a progress bar


def cache_root() -> Path:
    """Where token caches live: $LLMLAB_CACHE_DIR, else $XDG_CACHE_HOME/llmlab, else ~/.cache."""
    if env := os.environ.get("LLMLAB_CACHE_DIR"):
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "llmlab"


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


@dataclass
class TokenDataset:
    """Token ids of a corpus with the tokenizer that made them and counts for statistics."""

    corpus: Corpus
    tokenizer: Tokenizer
    tokens: np.ndarray  # read-only memmap of all ids, in corpus order
    counts: np.ndarray  # occurrences of each id over the whole corpus
    n_chars: int
    split: tuple[float, float, float]
    cache_dir: Path
    cache_hit: bool

    folds: int = 1  # data.folds, data.fold (core.folds): which block of train+val is val
    fold: int = 0

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.shape[0])

    def bounds(self, name: str) -> tuple[int, int]:
        """[start, end) of a split: train, then val, then test, contiguous as in nanoGPT.
        With folds > 1 train and val share [start of train, end of val) (`spans`)."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}")
        cuts = np.cumsum([0.0, *self.split]) * self.n_tokens
        i = SPLITS.index(name)
        start, end = int(round(cuts[i])), int(round(cuts[i + 1]))
        return start, min(end, self.n_tokens)

    def spans(self, name: str) -> list[tuple[int, int]]:
        """The [start, end) parts of a split: one, except the train split of a fold, which
        is the text before its val block and the text after it (either may be empty)."""
        if self.folds == 1 or name == "test":
            return [self.bounds(name)]
        val, train = fold_spans(self.bounds("train")[0], self.bounds("val")[1],
                                self.folds, self.fold)
        return [val] if name == "val" else train

    def split_size(self, name: str) -> int:
        return sum(end - start for start, end in self.spans(name))

    def split_parts(self, name: str) -> list[np.ndarray]:
        """The split's tokens, one array per part (`spans`): a window never spans two."""
        return [self.tokens[start:end] for start, end in self.spans(name)]

    def split_tokens(self, name: str) -> np.ndarray:
        """The split's tokens; a fold's train split (two parts) joined: for counting and
        prompts, never for windows (`split_parts`)."""
        parts = self.split_parts(name)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def check_windows(self, name: str, context: int) -> None:
        """Refuse a split too small to hold one window of `context` + 1 tokens, before a run
        needs it (a val split of 10 tokens would otherwise fail at the first evaluation)."""
        n = max((len(p) for p in self.split_parts(name)), default=0)
        if n >= context + 1:
            return
        if self.folds > 1:
            part = "val block" if name == "val" else "longest train part"
            raise LlmlabError(
                f"data.folds: fold {self.fold}'s {part} has {n} tokens, fewer than "
                f"model.context + 1 ({context + 1}); use fewer folds or a larger corpus")
        raise LlmlabError(
            f"data.split: the {name} split has {n} tokens, fewer than "
            f"model.context + 1 ({context + 1}); use a larger corpus or fraction")

    def get_batch(self, name: str, batch_size: int, context: int, generator=None):
        """Random (x, y) windows from a split as int64 torch tensors [batch_size, context].

        y is x shifted by one token. Positions come from `generator` (a torch.Generator), so a
        seeded generator gives the same batches, and its state can be saved for an exact resume.
        A split in two parts (a fold's train) draws uniformly among the windows that lie
        wholly inside one part: none straddles the held-out block.
        """
        import torch

        self.check_windows(name, context)
        spans = self.spans(name)
        counts = np.array([max(0, end - start - context) for start, end in spans])
        starts = torch.randint(int(counts.sum()), (batch_size,), generator=generator).numpy()
        # a start among all the parts' starts -> its part, then the corpus offset in that part
        part = np.searchsorted(np.cumsum(counts), starts, side="right")
        starts = starts - np.cumsum([0, *counts])[part] + np.array([s for s, _ in spans])[part]
        data = self.tokens
        windows = data[starts[:, None] + np.arange(context + 1)].astype(np.int64)
        block = torch.from_numpy(windows)
        return block[:, :-1], block[:, 1:]


def cache_key(corpus: Corpus, cfg: DataConfig) -> str:
    settings = {
        "v": CACHE_VERSION, "corpus": corpus.digest, "tokenizer": cfg.tokenizer,
        "vocab_size": cfg.vocab_size, "encoding_errors": cfg.encoding_errors,
    }
    return hashlib.blake2b(json.dumps(settings, sort_keys=True).encode(),
                           digest_size=12).hexdigest()


def load_dataset(cfg: DataConfig, base_dir: Path | None = None, *,
                 cache_dir: Path | None = None, progress: Progress | None = None) -> TokenDataset:
    """Open the corpus of `cfg`, tokenizing it on first use and reading the cache after."""
    corpus = open_corpus(cfg.corpus, base_dir, cfg.encoding_errors)
    entry = (cache_dir or cache_root()) / cache_key(corpus, cfg)
    hit = (entry / META_FILE).exists()
    if not hit:
        _build_entry(corpus, cfg, entry, progress or _no_progress)
    return _open_entry(entry, corpus, cfg, hit)


def _no_progress(phase: str, fraction: float) -> None:
    pass


def _build_entry(corpus: Corpus, cfg: DataConfig, entry: Path, progress: Progress) -> None:
    """Tokenize the corpus into a temporary folder, then move it to `entry` in one rename."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_builds(entry.parent)
    tmp = make_temp_folder(entry.parent, f".{entry.name}.")
    lock = _hold(tmp)
    try:
        progress("training tokenizer", 0.0)
        tokenizer = train_tokenizer(cfg.tokenizer, corpus.iter_chunks(), cfg.vocab_size)
        dtype = token_dtype(tokenizer.vocab_size)
        counts = np.zeros(tokenizer.vocab_size, dtype=np.int64)
        n_chars = n_bytes_done = 0
        with open(tmp / TOKENS_FILE, "wb") as out:
            for chunk in corpus.iter_chunks():
                ids = tokenizer.encode(chunk)
                out.write(ids.astype(dtype).tobytes())  # (tofile's OSError has no errno)
                counts += np.bincount(ids, minlength=len(counts))
                n_chars += len(chunk)
                n_bytes_done += len(chunk.encode("utf-8", errors="replace"))
                progress("tokenizing", min(1.0, n_bytes_done / corpus.n_bytes))
            out.flush()
            os.fsync(out.fileno())
        if counts.sum() == 0:
            raise LlmlabError(f"{corpus.source}: corpus has no tokens")
        tokenizer.save(tmp)
        meta = {"version": CACHE_VERSION, "source": corpus.source, "digest": corpus.digest,
                "tokenizer": cfg.tokenizer, "vocab_size": tokenizer.vocab_size,
                "dtype": dtype.name, "n_tokens": int(counts.sum()), "n_chars": n_chars,
                "counts": counts.tolist()}
        (tmp / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
        try:
            tmp.rename(entry)
        except OSError:  # another process built the same entry meanwhile: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as e:  # a full disk: nothing half-built stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise disk_fault(e, "build the token cache", entry) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if lock is not None:
            os.close(lock)
    progress("done", 1.0)


STALE_BUILD_S = 3600  # a temp folder untouched this long, and held by no build, is litter
# `.KEY.RANDOM` (see _build_entry; mkdtemp's `_`, letters and digits in earlier versions)
BUILD_FOLDER = re.compile(r"\.[0-9a-f]{24}\.\w+")


def _hold(folder: Path) -> int | None:
    """Lock `folder` as in use by this build: the lock goes with the process, so the folder
    of a killed build is recognisably nobody's. Returns the descriptor to close after."""
    if fcntl is None:
        return None
    fd = os.open(folder, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def sweep_stale_builds(cache: Path) -> list[Path]:
    """Remove the temp folders of builds that were killed (a kill during tokenization leaves
    a hidden `.KEY.*` folder that nothing would ever remove): those no live build holds and
    untouched for STALE_BUILD_S. Returns what was removed."""
    removed = []
    for folder in cache.iterdir():
        if BUILD_FOLDER.fullmatch(folder.name) and _is_stale(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _is_stale(folder: Path) -> bool:
    try:
        if not folder.is_dir() or folder.is_symlink():
            return False
        touched = max([folder.stat().st_mtime, *(f.stat().st_mtime for f in folder.iterdir())])
        if time.time() - touched < STALE_BUILD_S:
            return False
        if fcntl is None:
            return True
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live build holds it
        finally:
            os.close(fd)
    except OSError:
        return False
    return True


def _open_entry(entry: Path, corpus: Corpus, cfg: DataConfig, hit: bool) -> TokenDataset:
    try:
        meta = json.loads((entry / META_FILE).read_text(encoding="utf-8"))
        tokenizer = load_tokenizer(entry)
        tokens = np.memmap(entry / TOKENS_FILE, dtype=np.dtype(meta["dtype"]), mode="r",
                           shape=(meta["n_tokens"],))
        counts = np.asarray(meta["counts"], dtype=np.int64)
        n_chars = int(meta["n_chars"])
    except Exception as e:
        raise LlmlabError(f"{entry}: damaged token cache ({type(e).__name__}); "
                          "delete this folder to rebuild it") from None
    return TokenDataset(corpus, tokenizer, tokens, counts, n_chars, tuple(cfg.split), entry, hit,
                        folds=cfg.folds, fold=cfg.fold)
