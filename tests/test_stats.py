"""Corpus statistics and the token-boundary preview."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from helpers.corpora import cfg, write

from core.dataset import load_dataset
from core.stats import corpus_stats, token_preview
from core.tokenizers import UNK, train_tokenizer

CHAR_TEXT = "aaaaaa bbbbb cccc\n"  # a:6 b:5 c:4 ' ':2 '\n':1, no ties


def test_char_stats_of_a_tiny_corpus(tmp_path: Path) -> None:
    path = write(tmp_path / "tiny.txt", CHAR_TEXT)
    stats = corpus_stats(load_dataset(cfg(path)))

    assert stats.source == str(path)
    assert stats.n_files == 1
    assert stats.n_bytes == len(CHAR_TEXT.encode())
    assert stats.n_chars == len(CHAR_TEXT)
    assert stats.n_tokens == len(CHAR_TEXT)
    assert stats.vocab_size == len(set(CHAR_TEXT))
    assert stats.tokenizer == "char"
    assert stats.chars_per_token == pytest.approx(1.0)
    assert stats.top_tokens == [("a", 6), ("b", 5), ("c", 4), (" ", 2), ("\n", 1)]
    assert stats.length_histogram == {1: len(CHAR_TEXT)}
    assert stats.unk_rate is None
    assert sum(stats.split_tokens.values()) == stats.n_tokens
    assert stats.split_tokens["train"] >= stats.split_tokens["val"]


def test_top_limits_the_table(tmp_path: Path) -> None:
    stats = corpus_stats(load_dataset(cfg(write(tmp_path / "t.txt", CHAR_TEXT))), top=2)
    assert stats.top_tokens == [("a", 6), ("b", 5)]


def test_multi_file_stats(tmp_path: Path) -> None:
    write(tmp_path / "c" / "one.txt", "héllo\n")
    write(tmp_path / "c" / "two.txt", "wörld")
    stats = corpus_stats(load_dataset(cfg(tmp_path / "c")))
    assert stats.n_files == 2
    assert stats.n_bytes == len("héllo\n".encode()) + len("wörld".encode())
    assert stats.n_chars == len("héllo\nwörld")


WORDS = {"the": 5, "cat": 4, "sat": 3, "on": 2, "mat": 1}


def word_corpus() -> str:
    words = [w for w, n in WORDS.items() for _ in range(n)]
    words = words[1::2] + words[::2]  # frequency is not the order of appearance
    return " ".join(words[:8]) + "\n" + " ".join(words[8:]) + "\n"


@pytest.mark.parametrize("vocab_size", [3, 4, 6, 0])
def test_word_stats_and_unk_rate(vocab_size: int, tmp_path: Path) -> None:
    text = word_corpus()
    path = write(tmp_path / "words.txt", text)
    stats = corpus_stats(load_dataset(cfg(path, tokenizer="word", vocab_size=vocab_size)))

    # Computed from the text: words and line breaks are the tokens.
    tokens = text.split() + ["\n"] * text.count("\n")
    freq = Counter(tokens)
    kept = {w for w, _ in freq.most_common(vocab_size - 1)} if vocab_size else set(freq)
    n_unk = sum(n for w, n in freq.items() if w not in kept)

    assert stats.n_tokens == len(tokens)
    assert stats.vocab_size == (vocab_size or len(freq) + 1)
    assert stats.unk_rate == pytest.approx(n_unk / len(tokens))
    assert sum(stats.length_histogram.values()) == stats.n_tokens
    assert sum(stats.split_tokens.values()) == stats.n_tokens
    expected_top = [(w, n) for w, n in freq.most_common() if w in kept]
    if n_unk:
        expected_top.append((UNK, n_unk))
    expected_top.sort(key=lambda wn: -wn[1])
    assert [n for _, n in stats.top_tokens] == [n for _, n in expected_top]
    assert dict(stats.top_tokens) == dict(expected_top)


def test_length_histogram_counts_characters_per_token(tmp_path: Path) -> None:
    text = "a bb ccc dddd bb ccc\n"
    stats = corpus_stats(load_dataset(cfg(write(tmp_path / "t.txt", text), tokenizer="word")))
    expected = Counter(len(w) for w in text.split())
    expected[1] += text.count("\n")  # the line-break token is one character
    assert stats.length_histogram == dict(expected)
    assert list(stats.length_histogram) == sorted(stats.length_histogram)
    assert stats.chars_per_token == pytest.approx(len(text) / (len(text.split()) + 1))


def test_bpe_stats_are_consistent(tmp_path: Path) -> None:
    text = ("the cat sat on the mat, the dog sat on the log. 中文 🎉\n") * 40
    ds = load_dataset(cfg(write(tmp_path / "t.txt", text), tokenizer="bpe", vocab_size=300))
    stats = corpus_stats(ds)
    assert stats.tokenizer == "bpe"
    assert stats.unk_rate is None
    assert stats.n_tokens == len(ds.tokens) < len(text.encode())
    assert sum(stats.length_histogram.values()) == stats.n_tokens
    assert sum(n for _, n in stats.top_tokens) <= stats.n_tokens
    counts = [n for _, n in stats.top_tokens]
    assert counts == sorted(counts, reverse=True)


def test_stats_of_a_reopened_corpus_are_the_same(tmp_path: Path) -> None:
    path = write(tmp_path / "t.txt", word_corpus())
    first = corpus_stats(load_dataset(cfg(path, tokenizer="word", vocab_size=4)))
    ds = load_dataset(cfg(path, tokenizer="word", vocab_size=4))
    assert ds.cache_hit
    assert corpus_stats(ds) == first


# --------------------------------------------------------------------------- preview

PREVIEW = "Hello,  wörld!\r\n中文 🎉 e\u0301\ttab\n"


@pytest.mark.parametrize("kind, vocab", [("char", 0), ("word", 0), ("bpe", 300), ("jieba", 0)])
def test_token_preview_spans_match_the_text(kind: str, vocab: int) -> None:
    tok = train_tokenizer(kind, [PREVIEW * 5], vocab)
    preview = token_preview(tok, PREVIEW)
    assert preview
    last = 0
    for span in preview:
        assert span.text == PREVIEW[span.start:span.end]
        assert last <= span.start <= span.end <= len(PREVIEW)
        last = span.end
    joined = "".join(span.text for span in preview)
    if kind == "word":
        assert [s.text for s in preview] == [w for line in PREVIEW.split("\n")
                                             for w in [*line.split(), "\n"]][:-1]
    else:
        assert joined == PREVIEW
