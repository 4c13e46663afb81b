"""`llmlab train` on several processes: torchrun's own launcher, and what each rank does.

`llmlab train SESSION --nproc N` (or `train.nproc = N`) runs N processes on this machine
through `torch.distributed.run` (torchrun) in standalone mode: a free rendezvous port, so two
jobs on one host never collide. On a cluster, users run torchrun themselves on every node
(`torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HEAD:29400 -m
llmlab train SESSION`); each rank then finds RANK/WORLD_SIZE in its environment and
core.device joins the group. Rank 0 is the run: it alone writes the run folder and reads its
control channel (core.engine_control broadcasts its decisions).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from core.errors import LlmlabError
from core.session import Session

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def under_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def rank() -> int:
    return int(os.environ.get("RANK", 0))


def check_nproc(nproc: int, device: str) -> None:
    """One line if this machine cannot run `nproc` processes of `device`."""
    if nproc < 1:
        raise LlmlabError(f"--nproc: must be >= 1 (got {nproc})")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if device in ("cpu", "auto") and nproc > (cores or 1) and not _has_cuda():
        raise LlmlabError(f"train.nproc: {nproc} processes, this machine has {cores} cores "
                          "(at most one process per core)")
    if device == "cuda" and nproc > _cuda_count():
        raise LlmlabError(f"train.nproc: {nproc} processes, this machine has "
                          f"{_cuda_count()} GPUs (one per process)")


def launch_ranks(args: argparse.Namespace, session: Session, resume: Path | None,
                 nproc: int) -> int:
    """Run `nproc` ranks of this `llmlab train` through torchrun; its exit status."""
    from core.runs import INFO_FILE, new_run_dir, read_run_info

    check_nproc(nproc, session.train.device)
    made_here = resume is None and args.run_dir is None
    if made_here:  # (made here: the launcher knows the folder, and tidies it if no rank began)
        args.run_dir = new_run_dir(session.resolve(session.train.runs_dir), session.name)
    run_dir = Path(resume or args.run_dir)
    inner = ["train", args.session, *(x for o in args.overrides for x in ("--set", o))]
    inner += ["--resume", str(resume)] if resume is not None else ["--run-dir", str(run_dir)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // nproc)))
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    torchrun = get_args_parser().parse_args([
        "--standalone", "--nproc-per-node", str(nproc), "--monitor-interval", "0.5",
        "-m", "llmlab", *inner])
    try:
        run(torchrun)
    except ChildFailedError as e:
        if made_here:  # (a launcher's folder is its launcher's to tidy)
            _discard_if_unstarted(run_dir)
        status = read_run_info(run_dir).get("status") if (run_dir / INFO_FILE).exists() else None
        failures = ", ".join(f"rank {r} exit {f.exitcode}" for r, f in e.failures.items())
        print(f"training stopped: a process failed ({failures}); run {run_dir} is "
              f"{status or 'not started'}", file=sys.stderr)
        return EXIT_BAD_INPUT if all(f.exitcode == EXIT_BAD_INPUT
                                     for f in e.failures.values()) else EXIT_INTERNAL
    status = read_run_info(run_dir).get("status", "")
    return EXIT_INTERRUPTED if str(status).startswith("stopped") else EXIT_OK


def _discard_if_unstarted(run_dir: Path) -> None:
    """The folder made for a run that never began (every rank refused at its start)."""
    from core.launch import discard_unstarted

    discard_unstarted(run_dir)


def end_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count()

