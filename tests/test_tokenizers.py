"""Tokenizers: exact round trips, the word vocabulary cap, jieba, save/load and token spans."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core import tokenizers as tokenizers_module
from core.errors import LlmlabError, TokenizerError
from core.tokenizers import (
    KINDS,
    TOKENIZER_FILE,
    UNK,
    Tokenizer,
    _split_for_batch,
    load_tokenizer,
    train_tokenizer,
)

MIXED = (
    "The quick brown fox jumps over the lazy dog. It's 3.14159, isn't it?\n"
    "def main(argv):\r\n    return {'a': [1, 2, 3]}  # comment\r\n"
    "Ünïcödé façade naïve résumé — “quotes” … ½ ∑ ∞\n"
    "中文分词很有趣。我们在北京学习自然语言处理！\n"
    "日本語のテキスト、한국어 텍스트, русский текст, ελληνικά.\n"
    "emoji 🎉🚀👩‍💻 and flags 🇫🇷 e\u0301 a\u0308 combining marks\n"
    "\ttabs\tand  double  spaces\x0bvertical\x0cform feed\x1bescape\n"
) * 20

# Any text a file could hold: every code point but lone surrogates and NUL.
ANY_CHAR = st.characters(blacklist_categories=("Cs",), blacklist_characters="\0")
FRAGMENTS = ["\r\n", "\n\n", "  ", "\t", "🎉", "👩‍💻", "中文", "e\u0301", "\u200d", "\ufeff",
             "'s", " the", "\x7f", "\U0010fffd"]
ANY_TEXT = st.one_of(
    st.text(ANY_CHAR),
    st.lists(st.one_of(st.text(ANY_CHAR, max_size=5), st.sampled_from(FRAGMENTS)),
             max_size=30).map("".join),
)


@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    return train_tokenizer("bpe", [MIXED], vocab_size=300)


def spans_cover(tok: Tokenizer, text: str) -> list[tuple[int, int]]:
    """Check spans are in order, inside the text, and non-overlapping; return them."""
    spans = tok.token_spans(text)
    last = 0
    for start, end in spans:
        assert last <= start <= end <= len(text), (spans, text)
        last = end
    return spans


# --------------------------------------------------------------------------- char

@settings(max_examples=200, deadline=None)
@given(ANY_TEXT)
@example("")
@example("a\r\nb\x01\x1f\u2028\U0001F600\u0301")
def test_char_round_trip(text: str) -> None:
    tok = train_tokenizer("char", [text])
    ids = tok.encode(text)
    assert ids.dtype == np.int64
    assert len(ids) == len(text)
    assert tok.vocab_size == len(set(text))
    assert tok.decode(ids) == text
    spans = spans_cover(tok, text)
    assert "".join(text[s:e] for s, e in spans) == text


def test_char_is_trained_from_all_chunks() -> None:
    tok = train_tokenizer("char", ["ab", "c\n", "ä"])
    assert tok.vocab_size == 5
    assert tok.decode(tok.encode("äcab\n")) == "äcab\n"
    assert len(set(tok.encode("abcä\n").tolist())) == 5


def test_char_unseen_character_raises() -> None:
    tok = train_tokenizer("char", ["hello world\n"])
    with pytest.raises(TokenizerError) as info:
        tok.encode("hello Zürich")
    msg = str(info.value)
    assert "\n" not in msg
    assert "Z" in msg and "ü" in msg
    assert isinstance(info.value, LlmlabError)


# --------------------------------------------------------------------------- bpe

@settings(max_examples=200, deadline=None)
@given(ANY_TEXT)
@example("")
@example("🎉🚀 中文 e\u0301\r\n\r\n\t\x01\x7f\U0010fffd")
@example("never seen: ꙮ 𓀀 ᚠᛇᚻ")
def test_bpe_round_trip_on_any_text(bpe: Tokenizer, text: str) -> None:
    ids = bpe.encode(text)
    assert ids.dtype == np.int64
    assert all(0 <= i < bpe.vocab_size for i in ids.tolist())
    assert bpe.decode(ids) == text
    spans = spans_cover(bpe, text)
    assert "".join(text[s:e] for s, e in spans) == text


def test_bpe_learns_merges(bpe: Tokenizer) -> None:
    assert 256 < bpe.vocab_size <= 300
    text = "The quick brown fox jumps over the lazy dog."
    assert len(bpe.encode(text)) < len(text.encode("utf-8"))


def test_bpe_long_text_round_trips(bpe: Tokenizer) -> None:
    text = MIXED * 12  # longer than one encoding batch piece
    assert len(text) > 1 << 16
    assert bpe.decode(bpe.encode(text)) == text


def encode_as_before(tok: Tokenizer, text: str) -> np.ndarray:
    """The ids every cache made before the fast path holds: each ~64 KiB piece of
    `_split_for_batch` encoded on its own."""
    return np.array([i for piece in _split_for_batch(text) for i in tok.hf.encode(piece).ids],
                    dtype=np.int64)


SPACES = ["\n", "\n\n", "\n\n\n", " ", "  ", "\t", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f",
          "\x85", "\xa0", "\u2028", "\u3000", "\u200b", "'s", "'", " '", "’", "1", ".", "é", "中"]


@settings(max_examples=300, deadline=None)
@given(st.one_of(ANY_TEXT, st.lists(st.one_of(st.sampled_from(SPACES),
                                               st.text("ab Z\n", max_size=4)),
                                     max_size=80).map("".join)))
@example("one\ntwo three\n\nfour  five\n \nsix'\nseven 's\n'eight")
def test_bpe_small_pieces_keep_every_id(bpe: Tokenizer, text: str) -> None:
    """Cut into pieces of a few characters, at every place the fast path may cut, a text
    still gives the ids it gave before."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tokenizers_module, "SMALL_PIECE", 3)
        mp.setattr(tokenizers_module, "BATCH_CHARS", 7)
        assert "".join(tokenizers_module._small_pieces(text)) == text
        assert bpe.encode(text).tolist() == encode_as_before(bpe, text).tolist()


def test_bpe_fast_path_gives_the_ids_of_before_on_a_long_text(bpe: Tokenizer) -> None:
    text = (MIXED + "a line\nand\n\n\nthree  spaces \n") * 40
    assert len(text) > 4 * (1 << 16)
    pieces = list(tokenizers_module._small_pieces(text))
    assert len(pieces) > len(_split_for_batch(text)) * 8  # really cut small
    assert np.array_equal(bpe.encode(text), encode_as_before(bpe, text))


def test_bpe_trained_from_small_pieces_is_the_same_tokenizer() -> None:
    text = (MIXED + "a line\nand\n\n\nthree  spaces \n") * 3
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tokenizers_module, "SMALL_PIECE", 1 << 30)  # no cut: the pieces of before
        whole = train_tokenizer("bpe", [text], vocab_size=300)
        mp.setattr(tokenizers_module, "SMALL_PIECE", 5)
        cut = train_tokenizer("bpe", [text], vocab_size=300)
    assert cut.to_dict() == whole.to_dict()


def test_bpe_needs_a_vocab_size() -> None:
    with pytest.raises(TokenizerError) as info:
        train_tokenizer("bpe", ["some text\n"], vocab_size=100)
    assert "vocab_size" in str(info.value)


# --------------------------------------------------------------------------- word

def test_word_splits_on_whitespace_and_keeps_line_breaks() -> None:
    text = "the  cat\tsat\n\non the   mat\n"
    tok = train_tokenizer("word", [text])
    assert tok.vocab[0] == UNK and tok.unk_id == 0
    ids = tok.encode(text)
    words = [tok.vocab[i] for i in ids]
    assert words == ["the", "cat", "sat", "\n", "\n", "on", "the", "mat", "\n"]
    assert tok.decode(ids) == "the cat sat\n\non the mat\n"
    assert tok.vocab_size == len({"the", "cat", "sat", "on", "mat", "\n"}) + 1


def test_word_vocab_is_capped_by_frequency() -> None:
    freq = {"alpha": 9, "beta": 7, "gamma": 5, "delta": 4, "eps": 2, "zeta": 1}
    words = [w for w, n in freq.items() for _ in range(n)]
    # interleave so the order of first appearance says nothing about frequency
    words = words[::2] + words[1::2]
    text = " ".join(words)  # one line, no line-break tokens
    for n in (2, 3, 5):
        tok = train_tokenizer("word", [text], vocab_size=n)
        assert tok.vocab_size == n
        assert tok.vocab[0] == UNK
        kept = [w for w, _ in Counter(words).most_common(n - 1)]
        assert set(tok.vocab[1:]) == set(kept)
        ids = tok.encode(text)
        expected_unk = sum(c for w, c in freq.items() if w not in kept)
        assert int((ids == 0).sum()) == expected_unk
        assert tok.decode(tok.encode("zeta alpha")) == ("zeta" if "zeta" in kept else UNK) \
            + " alpha"


def test_word_unknown_words_become_unk() -> None:
    tok = train_tokenizer("word", ["a b c\n"])
    ids = tok.encode("a xyz c\nqq")
    assert ids.tolist()[1] == 0 and ids.tolist()[4] == 0
    assert tok.decode(ids) == f"a {UNK} c\n{UNK}"


def test_word_spans_are_the_words() -> None:
    tok = train_tokenizer("word", ["one two three"])
    text = "  one   two\tthree  "
    spans = spans_cover(tok, text)
    assert [text[s:e] for s, e in spans] == text.split()
    ends = [0] + [e for _, e in spans]
    starts = [s for s, _ in spans] + [len(text)]
    gaps = "".join(text[e:s] for e, s in zip(ends, starts, strict=True))
    assert gaps.strip() == ""


# --------------------------------------------------------------------------- jieba

ZH = ("我来到北京清华大学。他来到了网易杭研大厦！ 我们 love Python 3，真的吗？\n"
      "第二行：自然语言处理。\n")


def test_jieba_segments_chinese_into_words() -> None:
    tok = train_tokenizer("jieba", [ZH])
    ids = tok.encode("我来到北京清华大学")
    words = [tok.vocab[i] for i in ids]
    assert "".join(words) == "我来到北京清华大学"
    assert len(words) < len("我来到北京清华大学")
    assert "北京" in words and "清华大学" in words
    assert any(len(w) >= 2 and re.fullmatch(r"[\u4e00-\u9fff]+", w) for w in tok.vocab)


def test_jieba_round_trips_when_uncapped() -> None:
    tok = train_tokenizer("jieba", [ZH])
    assert tok.decode(tok.encode(ZH)) == ZH
    spans = spans_cover(tok, ZH)
    assert "".join(ZH[s:e] for s, e in spans) == ZH
    assert len(spans) == len(tok.encode(ZH))


def test_jieba_cap_gives_unk() -> None:
    tok = train_tokenizer("jieba", [ZH], vocab_size=5)
    assert tok.vocab_size == 5
    assert (tok.encode(ZH) == tok.unk_id).any()


# --------------------------------------------------------------------------- save / load

SAMPLE_FOR = {
    "char": "the lazy fox, 中文 🎉\r\n",
    "word": "the quick lazy fox jumps\nunknownword over",
    "bpe": "never seen before: ꙮ 🚀 ü\r\n",
    "jieba": "我们在北京学习。 quick fox\n",
}
VOCAB_FOR = {"char": 0, "word": 20, "bpe": 300, "jieba": 0}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("to_folder", [False, True])
def test_save_load_round_trip(kind: str, to_folder: bool, tmp_path: Path) -> None:
    tok = train_tokenizer(kind, [MIXED], VOCAB_FOR[kind])
    target = tmp_path if to_folder else tmp_path / "tok.json"
    saved = tok.save(target)
    assert saved == (tmp_path / TOKENIZER_FILE if to_folder else target)
    assert saved.is_file()

    loaded = load_tokenizer(target)
    assert type(loaded) is type(tok) and loaded.kind == kind
    assert loaded.vocab_size == tok.vocab_size
    for text in (SAMPLE_FOR[kind], MIXED[:500]):
        ids = tok.encode(text)
        assert np.array_equal(loaded.encode(text), ids)
        assert loaded.decode(ids) == tok.decode(ids)
    assert loaded.token_spans(SAMPLE_FOR[kind]) == tok.token_spans(SAMPLE_FOR[kind])


def _valid_char_file(path: Path) -> None:
    train_tokenizer("char", [MIXED]).save(path)


def _truncated(path: Path) -> None:
    _valid_char_file(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _truncated_bpe(path: Path) -> None:
    train_tokenizer("bpe", [MIXED], 300).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


CORRUPT = {
    "truncated-char": _truncated,
    "truncated-bpe": _truncated_bpe,
    "empty": lambda p: p.write_bytes(b""),
    "garbage": lambda p: p.write_bytes(b"\x00\xff not json at all"),
    "wrong-kind": lambda p: p.write_text(json.dumps({"kind": "sentencepiece", "vocab": []})),
    "no-kind": lambda p: p.write_text(json.dumps({"chars": ["a"]})),
    "kind-with-newline": lambda p: p.write_text(json.dumps({"kind": "a\nb"})),
    "missing-vocab": lambda p: p.write_text(json.dumps({"kind": "word"})),
    "not-an-object": lambda p: p.write_text("[1, 2, 3]"),
    "bad-bpe-payload": lambda p: p.write_text(json.dumps({"kind": "bpe", "hf": {"x": 1}})),
}


@pytest.mark.parametrize("case", CORRUPT)
def test_load_corrupt_tokenizer_raises_one_line_error(case: str, tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    CORRUPT[case](path)
    with pytest.raises(TokenizerError) as info:
        load_tokenizer(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "\n" not in msg


def test_load_wrong_kind_names_the_kind(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"kind": "sentencepiece"}))
    with pytest.raises(TokenizerError) as info:
        load_tokenizer(path)
    assert "sentencepiece" in str(info.value)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError) as info:
        load_tokenizer(tmp_path / "nothing.json")
    assert str(tmp_path / "nothing.json") in str(info.value)


def test_unknown_kind_cannot_be_trained() -> None:
    with pytest.raises(TokenizerError) as info:
        train_tokenizer("sentencepiece", ["x"])
    assert all(kind in str(info.value) for kind in KINDS)


# --------------------------------------------------------------------------- spans

@pytest.mark.parametrize("kind", KINDS)
def test_token_spans_cover_the_text_in_order(kind: str, bpe: Tokenizer) -> None:
    tok = bpe if kind == "bpe" else train_tokenizer(kind, [MIXED], VOCAB_FOR[kind])
    text = MIXED[:400]
    spans = spans_cover(tok, text)
    assert len(spans) == len(tok.encode(text))
    covered = "".join(text[s:e] for s, e in spans)
    if kind == "word":
        assert covered == re.sub(r"[^\S\n]+", "", text)  # all but the spaces
    else:
        assert covered == text
