"""Fitting text into a few cells."""

from __future__ import annotations

from pathlib import Path

SPARK = "▁▂▃▄▅▆▇█"


def middle_ellipsis(text: str, width: int) -> str:
    """`text` in at most `width` characters, an ellipsis in the middle if it must be cut
    (run and session names differ at both ends: a date at one, a name at the other)."""
    if len(text) <= width:
        return text
    if width < 3:
        return text[:width]
    head = width // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def fit_words(text: str, width: int) -> str:
    """`text` with every word too long for a line of `width` cut in its middle (room left
    for a short word before it, like a "✗"), so wrapping breaks only between words: a long
    path never pushes the cause after it (`path: no such file`) off a line-limited status."""
    if width < 12:
        return text
    return " ".join(middle_ellipsis(word, width - 4) for word in text.split(" "))


def sparkline(values: list[float], width: int = 12) -> str:
    """The last `width` values as block characters (lowest ▁, highest █)."""
    values = [v for v in values[-width:] if v == v]
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    return "".join(SPARK[min(7, int((v - lo) / span * 8))] for v in values)


def source_name(source: str) -> str:
    """A run folder's name, or run/compressed/name for a compressed model."""
    path = Path(source)
    if path.parent.name == "compressed":
        return f"{path.parent.parent.name}/compressed/{path.name}"
    return path.name
