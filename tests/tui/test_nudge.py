"""Nudging a field's value with + and - (sizes and rates double, steps count)."""

from __future__ import annotations

import pytest

from tui.nudge import format_number, nudge


def test_nudge_doubles_sizes_and_rates_and_steps_counts() -> None:
    lo1 = {"lo": 1}
    assert nudge("model.n_embd", 128, +1, lo1) == 256
    assert nudge("model.n_embd", 128, -1, lo1) == 64
    assert nudge("model.n_embd", 1, -1, lo1) == 1  # 0 would leave the range
    assert nudge("optim.lr", 1e-3, +1, {"lo": 0.0, "lo_open": True}) == 2e-3
    assert nudge("model.n_layer", 4, +1, lo1) == 5
    assert nudge("model.n_layer", 1, -1, lo1) == 1
    frac = {"lo": 0.0, "hi": 1.0, "hi_open": True}
    assert nudge("model.dropout", 0.1, +1, frac) == pytest.approx(0.15)
    assert nudge("model.dropout", 0.0, -1, frac) == 0.0
    assert nudge("optim.min_lr", 0.0, +1, {"lo": 0.0}) == 1e-5
    assert format_number(0.001) == "0.001" and format_number(3e-5) == "3e-05"
