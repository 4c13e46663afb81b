"""The one small session of the tests, for the engine's tests and the app's alike.

`small_session` gives a session that trains in seconds; a test that depends on a value (how
many steps, how often it evaluates, the learning rate) passes it by name. `tiny_session` is
the same session with `QUICK_RUN`'s values: a run that ends by itself after a dozen steps at
a high learning rate, what the engine's tests were written against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.session import SECTIONS, Session, field_doc, set_field, validate

# The engine's tests' run: ends by itself, logs every step, evaluates only when asked.
QUICK_RUN: dict[str, Any] = dict(context=16, lr=1e-2, warmup_steps=2, min_lr=1e-3,
                                 max_steps=12, log_interval=1, eval_interval=0, seed=1,
                                 runs_dir="runs")  # relative: under the session's folder

_ORDER = ("train", *(s for s in SECTIONS if s != "train"))  # a bare `seed` is train.seed


def _path(name: str) -> str:
    """The dotted field a bare keyword names: the first section (train first) that has it."""
    for section in _ORDER:
        try:
            field_doc(f"{section}.{name}")
        except KeyError:
            continue
        return f"{section}.{name}"
    raise TypeError(f"small_session: no session field named {name!r}")


def small_session(folder: Path, arch: str = "gpt", name: str = "tiny", **fields: Any) -> Session:
    """A one-layer `arch` (2 heads, 32 wide, 32 tokens of context) on the synthetic corpus:
    batches of 8, 4 eval batches, no periodic checkpoints, runs under folder/runs; training
    goes on (100,000 steps, evaluating every 100, logging every 5) until stopped. `fields`
    set any field by its name (train's first: `max_steps=12`, `lr=1e-2`, `context=16`)."""
    s = Session(name=name)
    s.base_dir = folder
    s.data.corpus = "sample:synthetic"
    s.model.arch, s.model.n_layer, s.model.n_head, s.model.n_embd, s.model.context = (
        arch, 1, 2, 32, 32)
    s.optim.warmup_steps = 0
    t = s.train
    t.batch_size, t.max_steps, t.eval_interval, t.eval_iters = 8, 100_000, 100, 4
    t.log_interval, t.checkpoint_interval, t.runs_dir = 5, 0, str(folder / "runs")
    for key, value in fields.items():
        set_field(s, _path(key), value)
    return s


def tiny_session(folder: Path, arch: str = "gpt", name: str = "t", **fields: Any) -> Session:
    """`small_session` with QUICK_RUN's values (and `fields` over them); a valid session."""
    s = small_session(folder, arch, name, **{**QUICK_RUN, **fields})
    assert validate(s) == []
    return s
