"""`llmlab train SESSION` with `data.folds = k > 1`: k-fold cross-validation (core.folds).

The k folds train one after another in this process, each an ordinary run with its progress
bar (its frozen session says which fold it holds out; its run.json names its group), then the
k val losses, their mean and spread are printed. With --detach the k folds start at once as
background jobs, each with cores/k threads; `llmlab runs` shows the group when they end.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from core.errors import LlmlabError
from core.folds import check_fold_sizes, fold_info, fold_session, launch_folds, summarize_folds
from core.session import Session

EXIT_OK = 0


def train_folds(args: argparse.Namespace, session: Session) -> int:
    k = session.data.folds
    if args.nnodes != 1 or args.rdzv_endpoint:
        raise LlmlabError("data.folds: cross-validation trains on this machine: not with "
                          "--nnodes/--rdzv-endpoint")
    if args.max_restarts < 0:
        raise LlmlabError(f"--max-restarts: must be >= 0 (got {args.max_restarts})")
    if not args.detach and ((args.nproc or session.train.nproc) > 1 or args.max_restarts):
        raise LlmlabError(f"data.folds: {k} folds under torchrun (--nproc, train.nproc, "
                          "--max-restarts) train as jobs: add --detach")
    check_fold_sizes(session)
    if args.detach:
        return _detach_folds(args, session)
    from core.launch import discard_unstarted
    from core.runs import new_run_dir
    from llmlab.run_commands import train_here

    runs_root = session.resolve(session.train.runs_dir)
    run_dirs = []
    group = ""
    for fold in range(k):
        run_dir = new_run_dir(runs_root, session.name)
        group = group or run_dir.name  # (the group is named after its fold 0's run)
        print(f"fold {fold + 1} of {k} (val block {fold}), group {group}", file=sys.stderr,
              flush=True)
        code = train_here(args, fold_session(session, fold), None, run_dir,
                          fold_info(group, fold, k))
        if discard_unstarted(run_dir):  # (refused before it began: nothing to keep)
            return code
        run_dirs.append(run_dir)
        if code != EXIT_OK:
            print(summarize_folds(run_dirs).line(), flush=True)
            if fold + 1 < k:
                print(f"folds {fold + 1}..{k - 1} not trained", file=sys.stderr)
            return code
    print(summarize_folds(run_dirs).line(), flush=True)
    return EXIT_OK


def _detach_folds(args: argparse.Namespace, session: Session) -> int:
    jobs = launch_folds(session, nproc=args.nproc, max_restarts=args.max_restarts)
    for fold, job in enumerate(jobs):
        print(f"fold {fold + 1} of {len(jobs)}: pid {job.pid}, run folder {job.run_dir}",
              flush=True)
    print(f"{len(jobs)} folds training in the background (group {jobs[0].run_dir.name}); "
          f"their val losses, mean and spread: llmlab runs {shlex.quote(session.name)}",
          flush=True)
    return EXIT_OK
