"""Corpus statistics and the token-boundary preview, for the Dataset pane and `llmlab data`.

Everything here is computed from the counts stored with the token cache, so statistics of a
reopened corpus cost nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from core.dataset import TokenDataset
from core.tokenizers import Tokenizer


@dataclass
class CorpusStats:
    source: str
    n_files: int
    n_bytes: int
    n_chars: int
    n_tokens: int
    vocab_size: int
    tokenizer: str
    chars_per_token: float
    top_tokens: list[tuple[str, int]]  # (readable token, occurrences), most frequent first
    length_histogram: dict[int, int]  # token length in characters -> occurrences
    unk_rate: float | None  # fraction of tokens that are <unk> (word/jieba), else None
    split_tokens: dict[str, int]


def corpus_stats(ds: TokenDataset, top: int = 20) -> CorpusStats:
    tok = ds.tokenizer
    counts = ds.counts
    order = np.argsort(-counts, kind="stable")[:top]
    top_tokens = [(tok.token_text(int(i)), int(counts[i])) for i in order if counts[i] > 0]
    lengths: Counter[int] = Counter()
    for token_id in np.flatnonzero(counts):
        lengths[len(tok.decode([int(token_id)]))] += int(counts[token_id])
    unk = tok.unk_id
    return CorpusStats(
        source=ds.corpus.source,
        n_files=len(ds.corpus.files),
        n_bytes=ds.corpus.n_bytes,
        n_chars=ds.n_chars,
        n_tokens=ds.n_tokens,
        vocab_size=tok.vocab_size,
        tokenizer=tok.kind,
        chars_per_token=ds.n_chars / max(ds.n_tokens, 1),
        top_tokens=top_tokens,
        length_histogram=dict(sorted(lengths.items())),
        unk_rate=None if unk is None else float(counts[unk]) / max(ds.n_tokens, 1),
        split_tokens={name: ds.split_size(name) for name in ("train", "val", "test")},
    )


@dataclass
class TokenSpan:
    start: int  # character offsets into the previewed text
    end: int
    text: str


def token_preview(tokenizer: Tokenizer, text: str) -> list[TokenSpan]:
    """`text` cut at its token boundaries, for a preview coloured token by token.

    Characters between tokens (the spaces a `word` tokenizer drops) belong to no span.
    """
    return [TokenSpan(s, e, text[s:e]) for s, e in tokenizer.token_spans(text)]
