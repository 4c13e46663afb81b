"""Text from files made safe to show on a terminal.

A run name, a session name, a token string or a corpus line comes from a file someone else may
have written. Printed raw, its control characters drive the terminal: ESC starts a colour, a
cursor move, a clear-screen or an OSC 52 clipboard write; BEL rings; a C1 character is a
one-byte ESC on some terminals; a bidirectional override reorders what follows on the line.
Every place that shows such text passes it through `visible` (or `one_line`) first.
"""

from __future__ import annotations

import unicodedata

# Bidirectional embeddings, overrides and isolates: invisible, they reorder what follows.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _shown(c: str) -> str:
    """What stands for the control character `c`: its symbol (␛ for ESC, ␡ for DEL), � for a
    C1 control or a bidirectional override; one character for one, so spans still line up."""
    code = ord(c)
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    return "\ufffd"


def is_control(c: str) -> bool:
    """Whether `c` would act on a terminal rather than be shown (C0, DEL, C1, bidi)."""
    return unicodedata.category(c) == "Cc" or c in _BIDI


def visible(text: str, keep: str = "") -> str:
    """`text` with every control character made visible (see `_shown`) except those in
    `keep` ("\\n\\t" for streamed text that keeps its lines). Same length as `text`."""
    return "".join(_shown(c) if is_control(c) and c not in keep else c for c in text)


_ONE_LINE = {"\n": "↵", "\r": "", "\t": "→"}


def one_line(text: str) -> str:
    """`text` on one line and safe to print: ↵ for a line break, → for a tab, no carriage
    return, every other control character made visible as in `visible`."""
    return "".join(_ONE_LINE.get(c, _shown(c) if is_control(c) else c) for c in text)


def has_control(text: str) -> bool:
    """Whether `text` holds a character `visible` would replace (names refuse them)."""
    return any(is_control(c) for c in text)
