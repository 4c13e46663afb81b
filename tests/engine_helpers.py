"""A session small enough to train in a second, shared by the engine, workbench and worker
tests (the app's tests have their own, in tests/tui/tui_helpers.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.session import Session, validate


def tiny_session(folder: Path, arch: str = "gpt", name: str = "t", **train: Any) -> Session:
    """A one-layer `arch` on the synthetic corpus, runs under `folder`; `train` overrides
    [train] fields (max_steps=12, eval_interval=0: no evaluations unless asked)."""
    s = Session(name=name)
    s.base_dir = folder
    s.data.corpus = "sample:synthetic"
    m = s.model
    m.arch, m.n_layer, m.n_embd, m.n_head, m.context = arch, 1, 32, 2, 16
    o = s.optim
    o.lr, o.warmup_steps, o.min_lr = 1e-2, 2, 1e-3
    t = s.train
    t.batch_size, t.max_steps, t.eval_iters, t.log_interval = 8, 12, 4, 1
    t.eval_interval, t.checkpoint_interval, t.seed = 0, 0, 1
    for key, value in train.items():
        setattr(t, key, value)
    assert validate(s) == []
    return s
