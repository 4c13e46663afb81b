"""The token dataset: cache hits and misses, dtypes, splits, batches, and damaged caches."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.corpora import cfg, write

import core.corpus
import core.dataset
from core.corpus import Corpus
from core.dataset import META_FILE, TOKENS_FILE, load_dataset, token_dtype
from core.errors import LlmlabError
from core.tokenizers import CharTokenizer, WordTokenizer

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def random_text(seed: int, n_lines: int = 200) -> str:
    """Random lines, so every window of a dozen characters occurs once."""
    rng = random.Random(seed)
    return "".join("".join(rng.choice(LETTERS + "  ,.") for _ in range(rng.randrange(1, 60)))
                   + "\n" for _ in range(n_lines))


def entries(cache: Path) -> list[Path]:
    return sorted(cache.iterdir()) if cache.exists() else []


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Make load_dataset read the corpus in many small chunks.

    (`iter_chunks` binds CHUNK_CHARS as a default argument, so patching the constant alone
    would not reach it.)
    """
    size = 97
    original = Corpus.iter_chunks
    monkeypatch.setattr(core.corpus, "CHUNK_CHARS", size)
    monkeypatch.setattr(Corpus, "iter_chunks",
                        lambda self, chunk_chars=size: original(self, chunk_chars))
    return size


# --------------------------------------------------------------------------- cache

def test_first_load_is_a_miss_then_a_hit(tmp_path: Path, cache_dir: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    text = random_text(1)
    path = write(tmp_path / "t.txt", text)

    first = load_dataset(cfg(path))
    assert first.cache_hit is False
    assert first.cache_dir.parent == cache_dir
    assert (first.cache_dir / META_FILE).is_file()
    assert np.array_equal(first.tokens, first.tokenizer.encode(text))
    assert first.tokenizer.decode(first.tokens) == text
    assert first.n_chars == len(text)

    def no_training(*args, **kwargs):
        raise AssertionError("the tokenizer was retrained on a cache hit")

    monkeypatch.setattr(core.dataset, "train_tokenizer", no_training)
    second = load_dataset(cfg(path))
    assert second.cache_hit is True
    assert second.cache_dir == first.cache_dir
    assert np.array_equal(second.tokens, first.tokens)
    assert np.array_equal(second.counts, first.counts)
    assert second.tokenizer.decode(second.tokens) == text
    assert entries(cache_dir) == [first.cache_dir]


def test_changed_content_of_same_size_is_a_miss(tmp_path: Path) -> None:
    path = write(tmp_path / "t.txt", "hello world\n" * 50)
    first = load_dataset(cfg(path))
    write(path, "hello World\n" * 50)
    second = load_dataset(cfg(path))
    assert second.cache_hit is False
    assert second.cache_dir != first.cache_dir
    assert second.tokenizer.decode(second.tokens) == "hello World\n" * 50
    assert "W" in second.tokenizer.chars and "W" not in first.tokenizer.chars


def test_changed_tokenizer_settings_are_a_miss(tmp_path: Path, cache_dir: Path) -> None:
    path = write(tmp_path / "t.txt", random_text(2))
    settings = [dict(tokenizer="char"), dict(tokenizer="word"),
                dict(tokenizer="word", vocab_size=10), dict(tokenizer="bpe", vocab_size=300),
                dict(tokenizer="bpe", vocab_size=320)]
    dirs = set()
    for s in settings:
        ds = load_dataset(cfg(path, **s))
        assert ds.cache_hit is False, s
        assert ds.tokenizer.kind == s["tokenizer"]
        dirs.add(ds.cache_dir)
    assert len(dirs) == len(settings)
    for s in settings:
        assert load_dataset(cfg(path, **s)).cache_hit is True, s
    assert len(entries(cache_dir)) == len(settings)


def test_changed_split_reuses_the_cache(tmp_path: Path) -> None:
    path = write(tmp_path / "t.txt", random_text(3))
    first = load_dataset(cfg(path, split=[0.8, 0.1, 0.1]))
    second = load_dataset(cfg(path, split=[0.5, 0.5, 0.0]))
    assert second.cache_hit is True
    assert second.bounds("train") != first.bounds("train")


def test_explicit_cache_dir_is_used(tmp_path: Path, cache_dir: Path) -> None:
    path = write(tmp_path / "t.txt", random_text(4))
    ds = load_dataset(cfg(path), cache_dir=tmp_path / "elsewhere")
    assert ds.cache_dir.parent == tmp_path / "elsewhere"
    assert not cache_dir.exists()


def test_progress_is_reported(tmp_path: Path, small_chunks: int) -> None:
    path = write(tmp_path / "t.txt", random_text(5))
    seen: list[tuple[str, float]] = []
    load_dataset(cfg(path), progress=lambda phase, f: seen.append((phase, f)))
    tokenizing = [f for phase, f in seen if phase == "tokenizing"]
    assert len(tokenizing) > 5
    assert tokenizing == sorted(tokenizing) and tokenizing[-1] == pytest.approx(1.0)
    assert seen[-1] == ("done", 1.0)


# --------------------------------------------------------------------------- chunked encoding

@pytest.mark.parametrize("kind", ["char", "word"])
def test_chunked_tokenizing_equals_encoding_whole_text(
        kind: str, tmp_path: Path, small_chunks: int, monkeypatch: pytest.MonkeyPatch) -> None:
    text = random_text(6, n_lines=300)
    write(tmp_path / "c" / "a.txt", text[:3000] + "no newline at end")
    write(tmp_path / "c" / "b.txt", text[3000:])
    whole = text[:3000] + "no newline at end\n" + text[3000:]

    cls = CharTokenizer if kind == "char" else WordTokenizer
    calls = []
    original = cls.encode

    def counting(self, chunk):
        calls.append(len(chunk))
        return original(self, chunk)

    monkeypatch.setattr(cls, "encode", counting)
    ds = load_dataset(cfg(tmp_path / "c", tokenizer=kind))
    monkeypatch.setattr(cls, "encode", original)

    assert len(calls) > 20 and max(calls) < 2 * small_chunks
    assert ds.n_chars == len(whole)
    assert np.array_equal(np.asarray(ds.tokens), ds.tokenizer.encode(whole))
    if kind == "char":
        assert ds.tokenizer.decode(ds.tokens) == whole


# --------------------------------------------------------------------------- dtype

def test_token_dtype_boundary() -> None:
    assert token_dtype(2) == np.uint16
    assert token_dtype(65536) == np.uint16  # ids 0..65535 fit
    assert token_dtype(65537) == np.uint32
    assert token_dtype(1_000_000) == np.uint32


def test_small_vocab_is_stored_as_uint16(tmp_path: Path) -> None:
    ds = load_dataset(cfg(write(tmp_path / "t.txt", random_text(7))))
    assert ds.tokens.dtype == np.uint16
    assert (ds.cache_dir / TOKENS_FILE).stat().st_size == 2 * ds.n_tokens


def test_large_word_vocab_is_stored_as_uint32(tmp_path: Path) -> None:
    n_words = 70_000
    words = [f"w{i}" for i in range(n_words)]
    text = "\n".join(" ".join(words[i:i + 20]) for i in range(0, n_words, 20)) + "\n"
    path = write(tmp_path / "big.txt", text)

    ds = load_dataset(cfg(path, tokenizer="word", split=[0.9, 0.05, 0.05]))

    assert ds.tokenizer.vocab_size == n_words + 2  # every word, "\n" and <unk>
    assert ds.tokens.dtype == np.uint32
    assert int(ds.tokens.max()) > 65535
    assert ds.n_tokens == n_words + text.count("\n")
    assert np.array_equal(np.asarray(ds.tokens), ds.tokenizer.encode(text))
    assert ds.tokenizer.decode(ds.tokens[-42:]).split() == words[-40:]
    again = load_dataset(cfg(path, tokenizer="word", split=[0.9, 0.05, 0.05]))
    assert again.cache_hit and again.tokens.dtype == np.uint32
    assert np.array_equal(again.tokens, ds.tokens)


# --------------------------------------------------------------------------- splits

@pytest.mark.parametrize("split", [[0.8, 0.1, 0.1], [0.9, 0.1, 0.0], [1 / 3, 1 / 3, 1 / 3],
                                   [0.5, 0.25, 0.25], [1.0, 0.0, 0.0]])
def test_split_bounds_are_contiguous_and_proportional(split: list[float], tmp_path: Path) -> None:
    ds = load_dataset(cfg(write(tmp_path / "t.txt", random_text(8, 37)), split=split))
    n = ds.n_tokens
    (a0, a1), (b0, b1), (c0, c1) = ds.bounds("train"), ds.bounds("val"), ds.bounds("test")
    assert a0 == 0 and a1 == b0 and b1 == c0 and c1 == n
    for (start, end), fraction in zip([(a0, a1), (b0, b1), (c0, c1)], split, strict=True):
        assert abs((end - start) - fraction * n) <= 1
    parts = [ds.split_tokens(name) for name in ("train", "val", "test")]
    assert np.array_equal(np.concatenate(parts), ds.tokens)


def test_unknown_split_name(tmp_path: Path) -> None:
    ds = load_dataset(cfg(write(tmp_path / "t.txt", random_text(9))))
    with pytest.raises(ValueError):
        ds.bounds("validation")


# --------------------------------------------------------------------------- batches

@pytest.fixture
def dataset(tmp_path: Path):
    return load_dataset(cfg(write(tmp_path / "t.txt", random_text(10, 300))))


def windows_of(data: np.ndarray, length: int) -> set[tuple[int, ...]]:
    return {tuple(w) for w in np.lib.stride_tricks.sliding_window_view(data, length).tolist()}


@pytest.mark.parametrize("name", ["train", "val", "test"])
def test_get_batch_windows_come_from_the_split(dataset, name: str) -> None:
    batch, context = 16, 12
    x, y = dataset.get_batch(name, batch, context, generator=torch.Generator().manual_seed(0))
    assert x.shape == (batch, context) and y.shape == (batch, context)
    assert x.dtype == torch.int64 and y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])

    tokens = np.asarray(dataset.tokens).astype(np.int64)
    start, end = dataset.bounds(name)
    inside = windows_of(tokens[start:end], context + 1)
    for row_x, row_y in zip(x.tolist(), y.tolist(), strict=True):
        assert tuple(row_x + row_y[-1:]) in inside


def test_get_batch_is_reproducible_with_a_seed(dataset) -> None:
    def batch(seed: int):
        return dataset.get_batch("train", 8, 16, generator=torch.Generator().manual_seed(seed))

    x1, y1 = batch(123)
    x2, y2 = batch(123)
    x3, _ = batch(124)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)


def test_get_batch_generator_state_resumes(dataset) -> None:
    gen = torch.Generator().manual_seed(7)
    dataset.get_batch("train", 4, 8, generator=gen)
    state = gen.get_state()
    after, _ = dataset.get_batch("train", 4, 8, generator=gen)
    resumed = torch.Generator()
    resumed.set_state(state)
    again, _ = dataset.get_batch("train", 4, 8, generator=resumed)
    assert torch.equal(after, again)


def test_split_just_large_enough(tmp_path: Path) -> None:
    ds = load_dataset(cfg(write(tmp_path / "t.txt", "abcdefghij" * 10), split=[0.9, 0.1, 0.0]))
    assert ds.bounds("val") == (90, 100)
    x, y = ds.get_batch("val", 5, 9, generator=torch.Generator().manual_seed(0))
    expected = torch.from_numpy(np.asarray(ds.tokens[90:100]).astype(np.int64))
    assert all(torch.equal(row, expected[:9]) for row in x)
    assert all(torch.equal(row, expected[1:]) for row in y)
    with pytest.raises(LlmlabError) as info:
        ds.get_batch("val", 5, 10)
    assert "data.split" in str(info.value) and "\n" not in str(info.value)


def test_split_too_small_for_context(tmp_path: Path) -> None:
    ds = load_dataset(cfg(write(tmp_path / "t.txt", random_text(11, 20)), split=[0.98, 0.01,
                                                                                   0.01]))
    with pytest.raises(LlmlabError) as info:
        ds.get_batch("val", 4, 64)
    assert "data.split" in str(info.value)
    assert "val" in str(info.value)
    with pytest.raises(LlmlabError, match="data.split"):
        load_dataset(cfg(ds.corpus.files[0], split=[1.0, 0.0, 0.0])).get_batch("test", 1, 1)


# --------------------------------------------------------------------------- damaged cache

def _truncate_tokens(entry: Path) -> None:
    data = (entry / TOKENS_FILE).read_bytes()
    (entry / TOKENS_FILE).write_bytes(data[: len(data) // 2])


def _empty_tokens(entry: Path) -> None:
    (entry / TOKENS_FILE).write_bytes(b"")


def _garbage_meta(entry: Path) -> None:
    (entry / META_FILE).write_text("{not json", encoding="utf-8")


def _truncated_meta(entry: Path) -> None:
    data = (entry / META_FILE).read_bytes()
    (entry / META_FILE).write_bytes(data[: len(data) // 2])


def _meta_missing_field(field: str):
    def damage(entry: Path) -> None:
        meta = json.loads((entry / META_FILE).read_text(encoding="utf-8"))
        del meta[field]
        (entry / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    return damage


def _bad_tokenizer(entry: Path) -> None:
    (entry / "tokenizer.json").write_text('{"kind": "char", "cha', encoding="utf-8")


DAMAGE = {
    "truncated-tokens": _truncate_tokens,
    "empty-tokens": _empty_tokens,
    "garbage-meta": _garbage_meta,
    "truncated-meta": _truncated_meta,
    "meta-without-dtype": _meta_missing_field("dtype"),
    "meta-without-n_chars": _meta_missing_field("n_chars"),
    "meta-without-counts": _meta_missing_field("counts"),
    "bad-tokenizer": _bad_tokenizer,
    "meta-deleted": lambda entry: (entry / META_FILE).unlink(),
    "tokens-deleted": lambda entry: (entry / TOKENS_FILE).unlink(),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_damaged_cache_entry_says_to_delete_it(case: str, tmp_path: Path) -> None:
    path = write(tmp_path / "t.txt", random_text(12))
    entry = load_dataset(cfg(path)).cache_dir
    DAMAGE[case](entry)

    with pytest.raises(LlmlabError) as info:
        load_dataset(cfg(path))
    msg = str(info.value)
    assert str(entry) in msg and "delete" in msg and "\n" not in msg

    shutil.rmtree(entry)
    rebuilt = load_dataset(cfg(path))
    assert rebuilt.cache_hit is False
    assert rebuilt.tokenizer.decode(rebuilt.tokens) == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("interruption", [RuntimeError, KeyboardInterrupt])
def test_interrupted_build_leaves_no_entry(
        interruption: type[BaseException], tmp_path: Path, cache_dir: Path, small_chunks: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    text = random_text(13)
    path = write(tmp_path / "t.txt", text)
    original = CharTokenizer.encode
    calls = []

    def failing(self, chunk):
        calls.append(chunk)
        if len(calls) == 5:
            raise interruption("stopped half way")
        return original(self, chunk)

    monkeypatch.setattr(CharTokenizer, "encode", failing)
    with pytest.raises(interruption):
        load_dataset(cfg(path))
    assert len(calls) == 5
    assert list(cache_dir.rglob(META_FILE)) == []
    assert list(cache_dir.rglob("*")) == []

    monkeypatch.setattr(CharTokenizer, "encode", original)
    ds = load_dataset(cfg(path))
    assert ds.cache_hit is False
    assert ds.tokenizer.decode(ds.tokens) == text
    assert load_dataset(cfg(path)).cache_hit is True


def test_corpus_without_tokens_is_an_error_and_leaves_nothing(
        tmp_path: Path, cache_dir: Path) -> None:
    path = write(tmp_path / "blank.txt", "   \t  ")
    with pytest.raises(LlmlabError) as info:
        load_dataset(cfg(path, tokenizer="word"))
    assert str(path) in str(info.value)
    assert list(cache_dir.rglob("*")) == []


def test_bpe_cache_holds_the_ids_of_before(tmp_path: Path, cache_dir: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast BPE path writes the very ids the cache held before it (each chunk's
    ~64 KiB pieces encoded one by one), so caches already on disk stay valid."""
    from core import tokenizers

    text = random_text(3, n_lines=6000) + "two  spaces\n\n\nand 's\n" * 300
    path = write(tmp_path / "c.txt", text)
    monkeypatch.setattr(tokenizers, "SMALL_PIECE", 64)  # many cuts, also in a small corpus
    ds = load_dataset(cfg(path, tokenizer="bpe", vocab_size=300))
    before = [i for chunk in ds.corpus.iter_chunks()
              for piece in tokenizers._split_for_batch(chunk)
              for i in ds.tokenizer.hf.encode(piece).ids]
    assert len(text) > 2 * (1 << 16)
    on_disk = np.fromfile(ds.cache_dir / TOKENS_FILE, dtype=token_dtype(ds.tokenizer.vocab_size))
    assert on_disk.tolist() == before
