"""Curve smoothing as TensorBoard does it, downsampling, and the plot's ticks."""

from __future__ import annotations

import math

import pytest

from tui.smoothing import debiased_ema, downsample


def _tensorboard(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing, transcribed from its chart code (vz_line_chart2)."""
    last, num_accum, out = 0.0, 0, []
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        num_accum += 1
        out.append(last / (1 - weight**num_accum))
    return out



def test_debiased_ema_matches_tensorboard() -> None:
    values = [3.0, 2.5, 2.7, 2.1, 1.9, 2.0, 1.5, 1.4]
    for weight in (0.0, 0.3, 0.6, 0.9, 0.99):
        assert debiased_ema(values, weight) == pytest.approx(_tensorboard(values, weight))



def test_debiased_ema_starts_at_the_first_value_not_at_zero() -> None:
    smoothed = debiased_ema([4.0, 4.2, 3.8], 0.9)
    assert smoothed[0] == pytest.approx(4.0)  # a plain EMA from 0 would give 0.4
    assert all(3.8 <= v <= 4.2 for v in smoothed)



def test_debiased_ema_edge_cases() -> None:
    assert debiased_ema([], 0.6) == []
    assert debiased_ema([1.5, 1.5, 1.5], 0.6) == [1.5, 1.5, 1.5]  # constant: untouched
    assert debiased_ema([1.0, 2.0, 3.0], 0.0) == pytest.approx([1.0, 2.0, 3.0])
    out = debiased_ema([1.0, float("nan"), 3.0], 0.5)
    assert out[0] == 1.0 and math.isnan(out[1])
    assert out[2] == pytest.approx((0.5 * 0.5 * 1.0 + 0.5 * 3.0) / (1 - 0.25))
    with pytest.raises(ValueError):
        debiased_ema([1.0], 1.0)



def test_downsample_keeps_ends_and_bounds_points() -> None:
    xs = list(range(10_000))
    ys = [float(x % 7) for x in xs]
    dx, dy = downsample(xs, ys, 100)
    assert len(dx) == len(dy) == 100
    assert (dx[0], dy[0], dx[-1], dy[-1]) == (0, 0.0, 9999, ys[-1])
    assert dx == sorted(dx)
    assert downsample([1, 2], [3.0, 4.0], 100) == ([1, 2], [3.0, 4.0])



def test_plot_ticks_are_round_whole_numbers() -> None:
    from tui.widgets.metric_plot import nice_ticks, tick_label

    assert nice_ticks(0, 95, most=5) == [0, 25, 50, 75]
    assert nice_ticks(0, 2000, most=5) == [0, 500, 1000, 1500, 2000]
    assert nice_ticks(1, 60, most=4) == [20, 40, 60]
    assert nice_ticks(3, 3) == [3]
    for lo, hi, most in [(0, 1, 3), (7, 123_457, 6), (1, 59, 2), (250, 251, 5)]:
        ticks = nice_ticks(lo, hi, most)
        assert 1 <= len(ticks) <= most and lo <= ticks[0] and ticks[-1] <= hi
        gaps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
        assert len(gaps) <= 1  # evenly spaced
    assert [tick_label(x) for x in (0, 250, 1500, 12_000, 2_500_000)] == [
        "0", "250", "1500", "12k", "2.5M"]
