"""`knob`: a session field with its documentation and the values it accepts (the schema's
one building block, shared by core/session.py and core/sweep_config.py)."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def knob(default: Any, doc: str, *, choices: tuple | None = None, lo: float | None = None,
         hi: float | None = None, lo_open: bool = False, hi_open: bool = False,
         cap: int | None = None, live: bool = False,
         archs: tuple[str, ...] | None = None) -> Any:
    """A session field with its documentation and the values it accepts.

    `lo`/`hi` bound numbers (inclusive unless `*_open`); `cap` is a sanity limit on a size or
    count (checked after the bounds, so a 0 still reads "must be >= 1"); `live` marks the
    fields a running training can change at its next step (the others need a restart);
    `archs` names the model families that read the field (None: every one), so a form can
    hide the others'.
    """
    meta = {"doc": doc, "choices": choices, "lo": lo, "hi": hi, "lo_open": lo_open,
            "hi_open": hi_open, "cap": cap, "live": live, "archs": archs}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)
