"""Tokenizers: one interface for `char`, `word`, `bpe` and `jieba`.

Each is trained from an iterable of text chunks (so a corpus never has to be in memory at
once), turns text into ids and back, reports where each token lies in the text (for the
Dataset pane's coloured preview), and saves to / loads from one JSON file, so a run can always
decode its own ids.

- `char`: one token per Unicode character seen in the corpus; `decode(encode(t)) == t`.
- `word`: the classic whitespace split (Keras' Tokenizer): words and line breaks are tokens,
  spaces are not kept, words beyond the vocabulary cap become `<unk>`.
- `bpe`: byte-level BPE trained with Hugging Face `tokenizers`; exact round trip on any text.
- `jieba`: Chinese word segmentation (optional extra), every character kept, so it round-trips
  too, except for words outside the vocabulary cap.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from core import session
from core.errors import TokenizerError
from core.fileio import TOKENIZER_FILE_LIMIT, UnreadableFile, read_small_text
from core.threads import bound_tokenizer_threads

UNK = "<unk>"
TOKENIZER_FILE = "tokenizer.json"
# The most tokens a vocabulary may hold: `vocab_size = 0` ("no cap") stops here, and a
# tokenizer file claiming more is refused before it is built (a copied folder's 20M-word
# tokenizer.json would otherwise take gigabytes, and the model's embedding more).
MAX_VOCAB = session.MAX_VOCAB
KINDS = ("char", "word", "bpe", "jieba")


class Tokenizer:
    """The interface every tokenizer implements."""

    kind: str = ""

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def encode(self, text: str) -> np.ndarray:
        """Token ids of `text` as an int64 array."""
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) character offsets of each token of `text`, in order."""
        raise NotImplementedError

    def token_text(self, token_id: int) -> str:
        """A readable form of one token (for tables of frequent tokens)."""
        return self.decode([token_id])

    @property
    def unk_id(self) -> int | None:
        """The id of the unknown token, for tokenizers that have one."""
        return None

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")
        return path


# --------------------------------------------------------------------------- char

class CharTokenizer(Tokenizer):
    kind = "char"

    def __init__(self, chars: Iterable[str]):
        self.chars = sorted(set(chars))
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        # Encoding is one vectorised table lookup from code point to id (-1 = not in vocab).
        points = np.array([ord(c) for c in self.chars], dtype=np.int64)
        self._lut = np.full(int(points.max(initial=0)) + 1, -1, dtype=np.int32)
        self._lut[points] = np.arange(len(points), dtype=np.int32)

    @classmethod
    def train(cls, chunks: Iterable[str], vocab_size: int = 0) -> CharTokenizer:
        seen: set[str] = set()
        for chunk in chunks:
            seen.update(chunk)
        return cls(seen)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        inside = points < len(self._lut)
        ids = self._lut[np.where(inside, points, 0)]
        unknown = ~inside | (ids < 0)
        if unknown.any():
            missing = sorted({chr(p) for p in points[unknown]})
            shown = "".join(missing[:10])
            raise TokenizerError(f"text has characters not in the vocabulary: {shown!r}")
        return ids.astype(np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [(i, i + 1) for i in range(len(text))]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chars": self.chars}


# --------------------------------------------------------------------------- word, jieba

class WordTokenizer(Tokenizer):
    """Whitespace words with `<unk>` (id 0), vocabulary ordered by frequency."""

    kind = "word"
    _pattern = re.compile(r"\S+|\n")

    def __init__(self, vocab: list[str]):
        self.vocab = vocab if vocab and vocab[0] == UNK else [UNK, *vocab]
        self.stoi = {w: i for i, w in enumerate(self.vocab)}

    @classmethod
    def train(cls, chunks: Iterable[str], vocab_size: int = 0) -> WordTokenizer:
        counts: Counter[str] = Counter()
        for chunk in chunks:
            counts.update(cls._split(chunk))
        return cls(_by_frequency(counts, vocab_size))

    @classmethod
    def _split(cls, text: str) -> list[str]:
        return cls._pattern.findall(text)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def unk_id(self) -> int:
        return 0

    def encode(self, text: str) -> np.ndarray:
        get = self.stoi.get
        return np.fromiter((get(w, 0) for w in self._split(text)), dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        out: list[str] = []
        for i in ids:
            word = self.vocab[i]
            if out and word != "\n" and out[-1] != "\n":
                out.append(" ")
            out.append(word)
        return "".join(out)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in self._pattern.finditer(text)]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "vocab": self.vocab}


class JiebaTokenizer(WordTokenizer):
    """Chinese words from jieba's segmenter; spaces and punctuation are tokens too."""

    kind = "jieba"

    @classmethod
    def _split(cls, text: str) -> list[str]:
        return _jieba().lcut(text)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.vocab[i] for i in ids)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [(start, end) for _, start, end in _jieba().tokenize(text)]


def _jieba():
    try:
        import jieba
    except ImportError:
        raise TokenizerError("tokenizer jieba needs the optional extra: "
                             "pip install 'llmlab[jieba]'") from None
    import logging

    jieba.setLogLevel(logging.WARNING)
    return jieba


def _by_frequency(counts: Counter[str], vocab_size: int) -> list[str]:
    """Most frequent first, ties broken alphabetically, capped to leave room for <unk>."""
    words = sorted(counts, key=lambda w: (-counts[w], w))
    return words[: (vocab_size or MAX_VOCAB) - 1]


# --------------------------------------------------------------------------- bpe

class BpeTokenizer(Tokenizer):
    """Byte-level BPE from Hugging Face `tokenizers` (GPT-2 style pre-tokenization)."""

    kind = "bpe"

    def __init__(self, hf_tokenizer):
        self.hf = hf_tokenizer

    @classmethod
    def train(cls, chunks: Iterable[str], vocab_size: int = 0) -> BpeTokenizer:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        if vocab_size < 260:
            raise TokenizerError(f"bpe needs data.vocab_size >= 260 (got {vocab_size})")
        bound_tokenizer_threads()  # (before rayon's pool exists: training makes it)
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=2, show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[],
        )
        hf.train_from_iterator(_lines_in_batches(chunks), trainer=trainer)
        return cls(hf)

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def encode(self, text: str) -> np.ndarray:
        """The ids of `text`, as if each ~64 KiB piece of `_split_for_batch` were encoded on
        its own (what every cache holds), made faster without changing an id: each piece is
        cut further at `NEUTRAL_CUT`s into ~4 KiB, which HF's byte-level BPE encodes ~2x
        faster per byte than long pieces; `encode_batch_fast` skips the offsets nobody reads
        here; and the batches are bounded (`BATCH_CHARS`) so that the Encoding objects (a
        string per token) never hold a whole corpus. The Rust side encodes a batch on
        `bound_tokenizer_threads` threads."""
        bound_tokenizer_threads()
        parts = [np.asarray(e.ids, dtype=np.int64)
                 for batch in _batches(_small_pieces(text))
                 for e in self.hf.encode_batch_fast(batch)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        return self.hf.decode(list(map(int, ids)))

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        spans, last = [], 0
        for start, end in self.hf.encode(text).offsets:
            # A character split over several byte tokens gives them overlapping offsets.
            start = max(start, last)
            spans.append((start, max(end, start)))
            last = max(last, end)
        return spans

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "hf": json.loads(self.hf.to_str())}


def _split_for_batch(text: str, piece: int = 1 << 16) -> list[str]:
    """Cut long text at line breaks into ~64 KiB pieces; short text stays whole."""
    if len(text) <= piece:
        return [text]
    pieces, start = [], 0
    while start < len(text):
        cut = text.find("\n", start + piece)
        end = len(text) if cut == -1 else cut + 1
        pieces.append(text[start:end])
        start = end
    return pieces


# A place where text can be cut without changing a token: after a line break between two
# non-space characters ("end.\nNext"), or before a single space between two ("a| word"). The
# byte-level pre-tokenizer's pattern (GPT-2's: 's|'t|...| ?\p{L}+| ?\p{N}+|
# ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+) makes "\n" there a token of its own and the space the
# start of the next token on both sides of such a cut, so the pieces' tokens are the text's.
# (Python's \s holds every character Rust's does, and more: its \S is the stricter.)
NEUTRAL_CUT = re.compile(r"(?<=\S\n)(?=\S)|(?<=\S)(?= \S)")
SMALL_PIECE = 1 << 12  # chars: HF's byte-level BPE is ~2x faster per byte on ~4 KiB pieces
BATCH_CHARS = 1 << 20  # chars encoded in one encode_batch_fast call


def _small_pieces(text: str) -> Iterable[str]:
    """`_split_for_batch`'s pieces, each cut at `NEUTRAL_CUT`s into ~`SMALL_PIECE` chars."""
    for piece in _split_for_batch(text):
        start = 0
        while len(piece) - start > SMALL_PIECE:
            cut = NEUTRAL_CUT.search(piece, start + SMALL_PIECE)
            if cut is None:
                break
            yield piece[start:cut.start()]
            start = cut.start()
        if start < len(piece):
            yield piece[start:]


def _batches(pieces: Iterable[str]) -> Iterable[list[str]]:
    batch: list[str] = []
    size = 0
    for piece in pieces:
        batch.append(piece)
        size += len(piece)
        if size >= BATCH_CHARS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _lines_in_batches(chunks: Iterable[str]) -> Iterable[str]:
    """The training text in small pieces: the trainer counts the same words (the cuts split
    no token), ~15 % faster than in 64 KiB pieces."""
    for chunk in chunks:
        yield from _small_pieces(chunk)


# --------------------------------------------------------------------------- factory

_CLASSES: dict[str, type[Tokenizer]] = {
    "char": CharTokenizer, "word": WordTokenizer, "bpe": BpeTokenizer, "jieba": JiebaTokenizer,
}


def train_tokenizer(kind: str, chunks: Iterable[str], vocab_size: int = 0) -> Tokenizer:
    """Build a tokenizer of `kind` from the corpus text."""
    if kind not in _CLASSES:
        raise TokenizerError(f"unknown tokenizer {kind!r} (choose {', '.join(KINDS)})")
    return _CLASSES[kind].train(chunks, vocab_size)


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    kind = d.get("kind")
    entries = _claimed_entries(d)
    if entries > MAX_VOCAB:
        raise TokenizerError(f"a vocabulary of {entries:,} tokens, more than the "
                             f"{MAX_VOCAB:,} llmlab loads")
    if kind == "char":
        return CharTokenizer(d["chars"])
    if kind in ("word", "jieba"):
        return _CLASSES[kind](list(d["vocab"]))
    if kind == "bpe":
        from tokenizers import Tokenizer as HFTokenizer

        return BpeTokenizer(HFTokenizer.from_str(json.dumps(d["hf"])))
    raise TokenizerError(f"unknown tokenizer kind {kind!r}")


def _claimed_entries(d: dict[str, Any]) -> int:
    """How many tokens a saved tokenizer holds, counted before anything is built."""
    if d.get("kind") == "bpe":
        return len(d.get("hf", {}).get("model", {}).get("vocab", ()))
    return len(d.get("chars", d.get("vocab", ())))


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load a tokenizer saved with `save`; a damaged file gives a one-line TokenizerError."""
    path = Path(path)
    if path.is_dir():
        path = path / TOKENIZER_FILE
    try:
        return tokenizer_from_dict(json.loads(read_small_text(path, TOKENIZER_FILE_LIMIT)))
    except FileNotFoundError:
        raise TokenizerError(f"{path}: no tokenizer file") from None
    except UnreadableFile as e:  # a FIFO, /dev/zero, a huge file
        raise TokenizerError(str(e)) from None
    except TokenizerError as e:
        raise TokenizerError(f"{path}: {e}") from None
    except Exception as e:  # bad JSON, missing keys, a damaged HF payload
        raise TokenizerError(f"{path}: not a valid tokenizer file ({type(e).__name__})") from None
