"""Stepping a number field up or down from the keyboard (`+`/`-` or the arrow keys).

Sizes and rates move by factors of two (n_embd 128 -> 256, lr 1e-3 -> 2e-3), fractions by
0.05, other counts by one; results stay inside the field's range.
"""

from __future__ import annotations

from typing import Any

DOUBLING = frozenset({
    "data.vocab_size", "model.n_embd", "model.n_hidden", "model.context", "model.n_head",
    "optim.lr", "optim.min_lr", "optim.weight_decay", "optim.warmup_steps",
    "train.batch_size", "train.grad_accum", "train.max_steps", "train.eval_interval",
    "train.eval_iters", "train.log_interval", "train.checkpoint_interval",
})
# The first step up from zero for doubling fields whose value is 0.
FROM_ZERO = {"optim.min_lr": 1e-5, "optim.weight_decay": 0.01}


def _in_range(value: float, meta: dict[str, Any]) -> bool:
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value <= lo if meta.get("lo_open") else value < lo):
        return False
    return not (hi is not None and (value >= hi if meta.get("hi_open") else value > hi))


def nudge(path: str, value: int | float, direction: int, meta: dict[str, Any]) -> int | float:
    """`value` one step up (direction > 0) or down; unchanged where a step would leave the
    field's range."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    up = direction > 0
    if path in DOUBLING:
        if value == 0:
            new: float = (1 if is_int else FROM_ZERO.get(path, 1e-4)) if up else 0
        elif is_int:
            new = value * 2 if up else value // 2
        else:
            new = value * 2 if up else value / 2
    elif is_int:
        new = value + (1 if up else -1)
    else:
        hi = meta.get("hi")
        step = 0.05 if hi is not None and hi <= 1 else 0.1
        new = round(value + (step if up else -step), 6)
    if not is_int:
        new = float(f"{new:.6g}")
    return new if _in_range(new, meta) else value


def format_number(value: int | float) -> str:
    """A number as a form shows it: ints plainly, floats short (1e-3 as 0.001, 3e-05)."""
    if isinstance(value, int):
        return str(value)
    return f"{value:g}"
