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
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from core.errors import LlmlabError
from core.session import Session

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
RANK_ZERO_WAIT_S = 10.0  # see let_rank_zero_speak


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
    if device == "cuda" and not _has_cuda():
        raise LlmlabError(f"train.device: cuda is not available on this machine, and {nproc} "
                          "processes on cuda train with nccl, one GPU each (use auto or cpu: "
                          "gloo)")
    if device == "cuda" and nproc > _cuda_count():
        raise LlmlabError(f"train.nproc: {nproc} processes, this machine has "
                          f"{_cuda_count()} GPUs (one per process)")


def launch_ranks(args: argparse.Namespace, session: Session, resume: Path | None,
                 nproc: int) -> int:
    """Run `nproc` ranks of this `llmlab train` through torchrun (on this machine, or on each
    of `--nnodes` machines meeting at `--rdzv-endpoint`); its exit status."""
    from core.runs import INFO_FILE, new_run_dir, read_run_info

    _quiet_torchrun()
    nodes = rendezvous(args.nnodes, args.rdzv_endpoint)
    check_nproc(nproc, session.train.device)
    restarts = check_restarts(args.max_restarts, nodes)
    # (made here: the launcher knows the folder, and tidies it if no rank began; a job of
    # several machines has its folder made by rank 0, wherever that runs)
    made_here = resume is None and args.run_dir is None and not nodes
    if made_here:
        args.run_dir = new_run_dir(session.resolve(session.train.runs_dir), session.name)
    run_dir = Path(resume) if resume is not None else args.run_dir
    inner = ["train", args.session, *(x for o in args.overrides for x in ("--set", o))]
    if resume is not None:
        inner += ["--resume", str(resume)]
    elif run_dir is not None:
        inner += ["--run-dir", str(run_dir)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // nproc)))
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError
    from torch.distributed.run import get_args_parser, run

    torchrun = get_args_parser().parse_args([
        *(nodes or ["--standalone"]), "--nproc-per-node", str(nproc), *restarts,
        "--monitor-interval", "0.5", "-m", "llmlab", *inner])
    try:
        run(torchrun)
    except RendezvousError as e:
        raise LlmlabError(_rendezvous_line(e, args.rdzv_endpoint, args.nnodes)) from None
    except ChildFailedError as e:
        if made_here:  # (a launcher's folder is its launcher's to tidy)
            _discard_if_unstarted(run_dir)
        first = e.get_first_failure()[1]
        if first.exitcode == EXIT_BAD_INPUT:
            return EXIT_BAD_INPUT  # (the job refused its input: rank 0 said why, one line)
        status = read_run_info(run_dir).get("status") if run_dir is not None and (
            run_dir / INFO_FILE).exists() else None
        failures = ", ".join(f"rank {r} exit {f.exitcode}" for r, f in e.failures.items())
        where = f"run {run_dir} is {status or 'not started'}" if run_dir is not None \
            else "see rank 0's output"
        print(f"training stopped: a process failed ({failures}); {where}", file=sys.stderr)
        return EXIT_INTERNAL
    if run_dir is None:  # (another machine's rank 0 has the run)
        return EXIT_OK
    status = read_run_info(run_dir).get("status", "")
    return EXIT_INTERRUPTED if str(status).startswith("stopped") else EXIT_OK


def check_restarts(max_restarts: int, nodes: list[str]) -> list[str]:
    """torchrun's arguments for `--max-restarts K`. Each attempt's ranks meet in a store of
    their own (TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1: rank 0 hosts it, on a new port each
    time). By default torchrun shares its rendezvous store with the ranks, and it outlives an
    attempt with the keys it holds (torch 2.13 names them alike in every attempt): a
    restarted rank that asks for rank 0's gloo address before the new rank 0 wrote it gets
    the dead one's, "connectFullMesh failed ... Connection refused", and the new rank 0 waits
    for it until torchrun kills it. (Seen whenever rank 1 reaches the group first; the
    same shared store breaks nccl restarts: pytorch/pytorch#135712.)"""
    if max_restarts < 0:
        raise LlmlabError(f"--max-restarts: must be >= 0 (got {max_restarts})")
    if max_restarts == 0:
        return []
    if nodes:
        raise LlmlabError("--max-restarts: on one machine only (a restarted attempt finds "
                          "its run in the folder this machine's launcher made)")
    os.environ["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"
    return ["--max-restarts", str(max_restarts)]


def restarted_run(run_dir: Path | None) -> Path | None:
    """The run a rank restarted by torchrun (--max-restarts) continues: the one its first
    attempt began in `run_dir`, from its latest checkpoint (None: not a restart, or the first
    attempt failed before its run began). Without a checkpoint there is nothing to continue:
    one line (the steps the first attempt logged stay as they were)."""
    from core.runs import INFO_FILE, has_checkpoint

    if run_dir is None or restart_count() == 0 or not (run_dir / INFO_FILE).exists():
        return None
    if not has_checkpoint(run_dir):
        raise LlmlabError(f"{run_dir}: a process died before the run's first checkpoint; "
                          "nothing to restart from (train.checkpoint_interval)")
    return run_dir


def let_rank_zero_speak() -> None:
    """A rank other than 0 that refuses what every rank refuses, where rank 0 says why: wait
    (up to RANK_ZERO_WAIT_S) for rank 0 to say it and end the attempt, when torchrun stops
    this rank. Leaving at once, this rank's exit could be the first torchrun saw, and it
    would stop rank 0 before its line was out (seen under load: no line at all)."""
    time.sleep(RANK_ZERO_WAIT_S)


def restart_count() -> int:
    """How many times torchrun restarted this rank's group (0: the first attempt)."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0))
    except ValueError:
        return 0


def rendezvous(nnodes: int, endpoint: str | None) -> list[str]:
    """torchrun's arguments for a job of `nnodes` machines meeting at `endpoint` (c10d, every
    wait bounded by LLMLAB_DIST_TIMEOUT); [] for one machine alone (standalone)."""
    if nnodes < 1:
        raise LlmlabError(f"--nnodes: must be >= 1 (got {nnodes})")
    if nnodes == 1 and not endpoint:
        return []
    if not endpoint:
        raise LlmlabError(f"--nnodes {nnodes}: needs --rdzv-endpoint HOST:PORT (the first "
                          "machine's address, reachable from the others)")
    host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise LlmlabError(f"--rdzv-endpoint {endpoint}: not HOST:PORT (e.g. head:29400)")
    from core.device import dist_timeout

    wait = int(dist_timeout())
    return ["--nnodes", str(nnodes), "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint,
            "--rdzv-conf", f"join_timeout={wait},read_timeout={wait}"]


def _rendezvous_line(e: Exception, endpoint: str | None, nnodes: int) -> str:
    """The one line of a rendezvous that did not form (torchrun raises it in this process,
    before any rank starts)."""
    from torch.distributed.elastic.rendezvous.api import (
        RendezvousConnectionError,
        RendezvousTimeoutError,
    )

    from core.device import dist_timeout

    wait = f"{dist_timeout():g} s (LLMLAB_DIST_TIMEOUT)"
    if isinstance(e, RendezvousConnectionError):
        return (f"--rdzv-endpoint {endpoint}: cannot be reached within {wait}; start the "
                "first machine's llmlab train, check the address and that the port is open")
    if isinstance(e, RendezvousTimeoutError):
        return (f"--rdzv-endpoint {endpoint}: not every one of the {nnodes} machines joined "
                f"within {wait}; run the same llmlab train on each")
    return f"--rdzv-endpoint {endpoint}: the rendezvous failed: {type(e).__name__} {e}"


def _quiet_torchrun() -> None:
    """torchrun's own log lines (a worker's exit code, the signals it sends the others) are
    for torchrun's users; llmlab's launcher says what happened in its own line."""
    import logging

    import torch.distributed.run  # noqa: F401 (its modules' loggers, each with its level)

    for name in list(logging.Logger.manager.loggerDict):
        if name.startswith(("torch.distributed.elastic", "torch.distributed.run")):
            logging.getLogger(name).setLevel(logging.CRITICAL)


@contextlib.contextmanager
def quiet_rendezvous_logs(args: argparse.Namespace) -> Iterator[None]:
    """While torch loads in a launcher of several machines (`--nnodes`, `--rdzv-endpoint`):
    its C++ log level is read then, and each failed try to reach the rendezvous would log a
    C++ stack (the launcher says it in one line). The ranks, started later, log as usual."""
    if args.command != "train" or (args.nnodes == 1 and not args.rdzv_endpoint) \
            or "TORCH_CPP_LOG_LEVEL" in os.environ:
        yield
        return
    os.environ["TORCH_CPP_LOG_LEVEL"] = "FATAL"
    try:
        yield
    finally:
        del os.environ["TORCH_CPP_LOG_LEVEL"]


def _discard_if_unstarted(run_dir: Path) -> None:
    """The folder made for a run that never began (every rank refused at its start)."""
    from core.launch import discard_unstarted

    discard_unstarted(run_dir)


def end_group(together: bool) -> None:
    """Leave the job's process group. `together` (the run ended as every rank saw it end:
    finished, or stopped by rank 0's word): wait for every rank first. A rank of a second
    machine that tore gloo down while rank 0's side was already gone aborted at its exit
    ("terminate called without an active exception", exit -6, 1 job in 2-6 on a loaded
    machine; tests/test_ddp.py::test_two_machines_meeting_at_a_rendezvous_make_one_run), so
    the job failed after a finished run (1 in 49 after the wait; exit_rank ends the rest).
    After a failure a peer may be gone: no waiting."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    if together:
        try:
            dist.barrier()
        except Exception:  # (a peer that left after all: its own line says why)
            pass
    dist.destroy_process_group()


def exit_rank(code: int) -> NoReturn:
    """End a rank's process with `code`, its output flushed, without the interpreter's
    teardown. After a run that ended well for every rank (end_group waited for all of them),
    torch's C++ teardown at the exit of a second machine's rank still aborted now and then
    ("terminate called without an active exception", exit -6: 1 job in 49 on a loaded
    machine), failing the job; nothing of a rank's is left to write by then (the run's files
    are closed when its engine returns)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count()

