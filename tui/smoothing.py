"""Curve smoothing and downsampling for the plots: pure functions on lists of floats.

`debiased_ema` is TensorBoard's scalar smoothing after its fix: a plain EMA started at 0 drags
the first points towards 0 (the long-standing complaint about its early charts); dividing by
`1 - weight**n` removes that bias, so the smoothed curve starts at the first value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

SMOOTHING_WEIGHT = 0.6  # TensorBoard's default: the Train and Runs panes' smoothing


def debiased_ema(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: EMA with bias correction; `weight` in [0, 1), 0 = none.

    Non-finite values are passed through unsmoothed and do not enter the average. A constant
    series is returned as it is (so floating point noise never shows as a wiggle).
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1) (got {weight})")
    finite = [v for v in values if math.isfinite(v)]
    if not finite or all(v == finite[0] for v in finite):
        return list(values)
    last = 0.0
    n = 0
    out = []
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1.0 - weight) * v
        n += 1
        out.append(last / (1.0 - weight**n))
    return out


def downsample(xs: Sequence[float], ys: Sequence[float],
               max_points: int) -> tuple[list[float], list[float]]:
    """At most `max_points` points of a curve: bucket means over equal runs of points, the
    first and last points kept as they are, so a long history draws as fast as a short one."""
    n = len(xs)
    if n <= max_points or max_points < 3:
        return list(xs), list(ys)
    inner = max_points - 2
    out_x, out_y = [xs[0]], [ys[0]]
    span = (n - 2) / inner
    for b in range(inner):
        lo = 1 + int(b * span)
        hi = max(lo + 1, 1 + int((b + 1) * span))
        bucket_x, bucket_y = xs[lo:hi], ys[lo:hi]
        out_x.append(sum(bucket_x) / len(bucket_x))
        out_y.append(sum(bucket_y) / len(bucket_y))
    out_x.append(xs[-1])
    out_y.append(ys[-1])
    return out_x, out_y
