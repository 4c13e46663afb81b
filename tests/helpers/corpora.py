"""Corpus files written by a test, and the data config that reads them."""

from __future__ import annotations

from pathlib import Path

from core.session import DataConfig


def write(path: Path, text: str) -> Path:
    """`text` as the file `path`, byte for byte (UTF-8, newlines as given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="")
    return path


def cfg(path: Path, **overrides) -> DataConfig:
    """The data config of the corpus `path`: characters, an 80/10/10 split, `overrides`."""
    return DataConfig(**{"corpus": str(path), "tokenizer": "char", "vocab_size": 0,
                         "split": [0.8, 0.1, 0.1], **overrides})
