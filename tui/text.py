"""Fitting text into a few cells."""

from __future__ import annotations


def middle_ellipsis(text: str, width: int) -> str:
    """`text` in at most `width` characters, an ellipsis in the middle if it must be cut
    (run and session names differ at both ends: a date at one, a name at the other)."""
    if len(text) <= width:
        return text
    if width < 3:
        return text[:width]
    head = width // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]
