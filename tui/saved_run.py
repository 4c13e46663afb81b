"""A finished (or stopped) run read back from its folder, for the Train pane of a reopened
session: the curves of metrics.jsonl as a `TrainHistory`, as if the pane had seen the run.

Torch-free (core.runs reads the files), and meant to run off the UI thread: a long run's
metrics.jsonl is read in a thread worker, never in a key handler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import messages as msg
from core.runs import newest_run, read_metrics, read_run_info
from core.session import Session
from tui.history import TrainHistory


@dataclass
class SavedRun:
    run_dir: str
    status: str  # run.json's: finished, stopped, running (a run that never ended) ...
    history: TrainHistory

    @property
    def last_step(self) -> int:
        steps = self.history.train_loss.steps
        return int(steps[-1]) if steps else 0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def history_from_records(records: list[dict[str, Any]], info: dict[str, Any]) -> TrainHistory:
    """The history a pane would have built from the run's events: train records give the
    train loss, lr and gradient norm, val evals the val loss and top-1, hparam records the
    markers."""
    history = TrainHistory(arch=str(info.get("arch", "")), params=int(info.get("params") or 0),
                           max_steps=int(info.get("max_steps") or 0))
    for r in records:
        kind, step = r.get("type"), r.get("step")
        if not _number(step):
            continue
        if kind == "train" and _number(r.get("loss")) and _number(r.get("lr")):
            history.train_loss.add(step, r["loss"])
            history.lr.add(step, r["lr"])
            if _number(r.get("grad_norm")):
                history.grad_norm.add(step, r["grad_norm"])
        elif kind == "eval" and r.get("split", "val") == "val":
            loss, top1 = r.get("val_loss", r.get("loss")), r.get("val_top1", r.get("top1"))
            if _number(loss) and _number(top1):
                history.evaluated(msg.EvalMetrics(int(step), "val", loss, math.exp(min(loss, 50)),
                                                  top1, r.get("val_top5", 0.0)))
        elif kind == "hparam" and _number(r.get("old")) and _number(r.get("new")):
            history.hparam(msg.HparamChanged(int(step), str(r.get("name", "")), r["old"],
                                             r["new"]))
    return history


def read_saved_run(run_dir: Path) -> SavedRun:
    info = read_run_info(run_dir)
    history = history_from_records(read_metrics(run_dir), info)
    history.run_dir = str(run_dir)
    return SavedRun(str(run_dir), str(info.get("status", "")), history)


def newest_saved_run(session: Session) -> SavedRun | None:
    """The session's newest run, read back; None if it has none."""
    run_dir = newest_run(session.resolve(session.train.runs_dir), session.name)
    return read_saved_run(run_dir) if run_dir is not None else None
