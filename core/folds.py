"""Cross-validation: `data.folds = k` trains k models, each holding out one fold as its val.

The folds are CONTIGUOUS blocks of the train+val part of the corpus (the test split, at its
end, stays held out from every fold): fold i's val is the i-th 1/k of it, its train the rest,
the text before the block and the text after it. Text is a sequence, so a random split of
windows would leak: a val window's neighbours (sharing all but one token with it) would be in
train. A train window is drawn from one side of the held-out block or the other, never across
it (core.dataset.TokenDataset.get_batch): the end of the text before the block and the start of
the text after it never follow each other, and no window may pretend they do.

A fold's run is an ordinary run whose frozen session says `folds = k` and `fold = i`, so any
later use of it (resume, evaluation, the Prune pane) sees the same val block. Its run.json
groups it with the others: `"folds": {"group": ID, "fold": i, "of": k}`, the group's id being
the run id of its fold 0. A group's summary (each fold's best val loss, their mean and spread)
is computed from the k run.json files whenever it is shown, so it is never out of date.

Torch-free: the Runs pane and `llmlab runs` group runs with it.
"""

from __future__ import annotations

import copy
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.runs import read_run_info

if TYPE_CHECKING:
    from core.launch import Launched
    from core.runs import RunSummary
    from core.session import Session

FOLDS_KEY = "folds"  # run.json: {"group": ID, "fold": i, "of": k}

Span = tuple[int, int]  # [start, end) token offsets


# --------------------------------------------------------------------------- the split

def fold_spans(start: int, end: int, folds: int, fold: int) -> tuple[Span, list[Span]]:
    """(val, train spans) of fold `fold` of `folds` over the tokens [start, end): the val is
    the fold-th contiguous 1/folds (rounded to tokens), train the non-empty parts around it."""
    n = end - start
    lo = start + round(n * fold / folds)
    hi = start + round(n * (fold + 1) / folds)
    train = [(a, b) for a, b in ((start, lo), (hi, end)) if b > a]
    return (lo, hi), train


def fold_session(session: Session, fold: int) -> Session:
    """A copy of `session` that trains fold `fold` (its data.fold set)."""
    copied = copy.deepcopy(session)
    copied.data.fold = fold
    return copied


def fold_info(group: str, fold: int, of: int) -> dict[str, Any]:
    """The run.json fields of a fold's run."""
    return {FOLDS_KEY: {"group": group, "fold": fold, "of": of}}


def run_fold(info: dict[str, Any]) -> tuple[str, int, int] | None:
    """(group, fold, of) from a run.json, or None when the run is no fold's (or the entry is
    not what llmlab writes: a damaged or hand-edited file groups nothing)."""
    entry = info.get(FOLDS_KEY)
    if not isinstance(entry, dict):
        return None
    group, fold, of = entry.get("group"), entry.get("fold"), entry.get("of")
    if not (isinstance(group, str) and group and _int(fold) and _int(of) and 0 <= fold < of):
        return None
    return group, fold, of


def check_fold_sizes(session: Session) -> None:
    """Every fold's val block, and its train split, can hold a window (`model.context` + 1
    tokens): one line naming data.folds, before any fold trains."""
    import dataclasses

    from core.dataset import load_dataset

    dataset = load_dataset(session.data, session.base_dir)
    for fold in range(session.data.folds):
        ds = dataclasses.replace(dataset, fold=fold)
        ds.check_windows("train", session.model.context)
        ds.check_windows("val", session.model.context)


def launch_folds(session: Session, nproc: int = 0, max_restarts: int = 0) -> list[Launched]:
    """Start the `data.folds` folds of `session` at once, each a background job (core.launch)
    with its share of the cores (`nproc` > 0: processes per fold, else train.nproc); their
    group is named after fold 0's run. The caller checks the sizes first (check_fold_sizes)."""
    import json

    from core.launch import RUN_INFO_ENV, launch_training
    from core.runs import new_run_dir
    from core.sweep import thread_env

    k = session.data.folds
    env = thread_env(k * (nproc or session.train.nproc))
    runs_root = session.resolve(session.train.runs_dir)
    jobs: list[Launched] = []
    for fold in range(k):
        run_dir = new_run_dir(runs_root, session.name)
        group = jobs[0].run_dir.name if jobs else run_dir.name
        info = json.dumps(fold_info(group, fold, k))
        jobs.append(launch_training(fold_session(session, fold), nproc=nproc, run_dir=run_dir,
                                    env={**env, RUN_INFO_ENV: info}, max_restarts=max_restarts))
    return jobs


def resume_folds(run_dirs: list[Path]) -> tuple[list[Launched], list[str]]:
    """Continue the folds of a group that stopped before they finished (stopped, or lost
    with their job), each as a job from its latest checkpoint, all at once with a share of
    the cores each: (those jobs, a line for each fold left as it is: finished, training,
    failed, or without a checkpoint to continue from)."""
    from core.launch import launch_training
    from core.runs import LOST, has_checkpoint, load_run_session, run_status
    from core.sweep import thread_env

    todo, left = [], []
    for run_dir in run_dirs:
        info = read_run_info(run_dir)
        fold = run_fold(info)
        label = f"fold {fold[1]}" if fold else run_dir.name
        status = run_status(run_dir, info)
        if not (status == LOST or status.startswith("stopped")):
            left.append(f"{label} {status}")
        elif not has_checkpoint(run_dir):
            left.append(f"{label} has no checkpoint")
        else:
            todo.append(run_dir)
    env = thread_env(len(todo))
    return [launch_training(load_run_session(d), resume=d, env=env) for d in todo], left


# --------------------------------------------------------------------------- the summary

@dataclass
class FoldSummary:
    """A group of fold runs: each fold's best val loss (None until it has one), mean and
    spread over those that have one."""

    group: str
    of: int
    losses: list[float | None]
    run_dirs: list[Path | None]  # by fold; None: that fold's run is not there (yet)

    @property
    def done(self) -> list[float]:
        return [x for x in self.losses if x is not None]

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.done) if self.done else None

    @property
    def std(self) -> float | None:
        """The sample standard deviation (n - 1) of the folds' val losses: how much the
        estimate depends on which block is held out; None with fewer than two."""
        return statistics.stdev(self.done) if len(self.done) > 1 else None

    def line(self) -> str:
        """`val loss over 3 folds: 1.2345 1.2401 1.2290, mean 1.2345 ± 0.0056 (std)`."""
        each = " ".join("-" if x is None else f"{x:.4f}" for x in self.losses)
        head = f"val loss over {self.of} folds: {each}"
        if self.mean is None:
            return head
        spread = f" ± {self.std:.4f} (std)" if self.std is not None else ""
        missing = self.of - len(self.done)
        more = f" ({missing} fold{'s' if missing > 1 else ''} without one yet)" if missing else ""
        return f"{head}, mean {self.mean:.4f}{spread}{more}"

    def short(self) -> str:
        """`1.234±0.006` (a table cell), `-` before any fold has a val loss."""
        if self.mean is None:
            return "-"
        return f"{self.mean:.3f}" + (f"±{self.std:.3f}" if self.std is not None else "")


def summarize_folds(run_dirs: list[Path]) -> FoldSummary:
    """The summary of one group from its runs' run.json (their fold and best val loss)."""
    infos = [(Path(d), read_run_info(Path(d))) for d in run_dirs]
    found = [(d, f, info) for d, info in infos if (f := run_fold(info)) is not None]
    if not found:
        raise ValueError("no fold runs given")
    group, _, of = found[0][1]
    losses: list[float | None] = [None] * of
    dirs: list[Path | None] = [None] * of
    for run_dir, (_, fold, k), info in found:
        if k == of:
            dirs[fold] = run_dir
            best = info.get("best_val_loss")
            losses[fold] = float(best) if _number(best) else None
    return FoldSummary(group, of, losses, dirs)


@dataclass
class FoldGroup:
    """A group of fold runs as a listing shows it: one row, the folds under it."""

    session: str
    summary: FoldSummary
    runs: list[RunSummary] = field(default_factory=list)  # in fold order

    @property
    def key(self) -> str:
        return f"folds:{self.session}/{self.summary.group}"

    @property
    def status(self) -> str:
        """`finished` when every fold is, else the first status of a fold that is not
        (`running`, `failed`...), or `started` when a fold's run is missing."""
        unfinished = [r.status for r in self.runs if r.status != "finished"]
        if unfinished:
            return unfinished[0]
        return "finished" if len(self.runs) == self.summary.of else "started"


def group_runs(runs: list[RunSummary]) -> list[RunSummary | FoldGroup]:
    """`runs` (a listing, in its order) with each group of fold runs replaced by one
    FoldGroup where its first run was, its runs in fold order. Runs of no group stay."""
    groups: dict[tuple[str, str], FoldGroup] = {}
    rows: list[RunSummary | FoldGroup] = []
    for run in runs:
        if run.folds is None:
            rows.append(run)
            continue
        group, _, of = run.folds
        key = (str(run.path.parent), group)
        if key not in groups:
            groups[key] = FoldGroup(run.session, FoldSummary(group, of, [None] * of,
                                                             [None] * of))
            rows.append(groups[key])
        groups[key].runs.append(run)
    for g in groups.values():
        g.runs.sort(key=lambda r: r.folds[1] if r.folds else 0)
        for r in g.runs:
            assert r.folds is not None
            if r.folds[2] == g.summary.of:
                g.summary.losses[r.folds[1]] = r.best_val_loss
                g.summary.run_dirs[r.folds[1]] = r.path
    return rows


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)
