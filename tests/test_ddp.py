"""Training on several processes through torchrun (DDP, gloo on CPU), as a user runs it:
`llmlab train SESSION --nproc 2`, steered through the run folder, resumed with another number
of processes, and a rank killed. Every process a test starts is gone at its end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.cli import cli_env, llmlab, ok, one_line_exit_2
from helpers.jobs import JOB_ENV, JobTracker, alive, wait_until
from helpers.sessions import small_session

from core import messages as msg
from core.checkpoint import list_checkpoints
from core.follow import record_event
from core.runs import has_checkpoint, read_metrics, read_run_info
from core.session import load_session, save_session

DDP_ENV = {**JOB_ENV, "LLMLAB_DIST_TIMEOUT": "20"}



def _session(folder: Path, name: str = "s.toml", **fields) -> Path:
    path = folder / name
    save_session(small_session(folder, name="d", log_interval=1, runs_dir="runs", batch_size=4,
                               **fields), path)
    return path


def _train_losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir) if r.get("type") == "train"]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


def test_two_processes_train_exactly_as_one_with_twice_the_accumulation(tmp_path: Path) -> None:
    """Every rank draws the same batch stream and trains on its own share of each draw, so 2
    processes x batch 4 see the very batches 1 process x batch 4 x grad_accum 2 sees, and DDP
    averages the gradients as accumulation does: the curves agree to float rounding (the sums
    may be taken in another order: 1e-5 allows for it; on this machine they are equal)."""
    two = _session(tmp_path, "two.toml", max_steps=20, eval_interval=10, nproc=2)
    one = _session(tmp_path, "one.toml", max_steps=20, eval_interval=10, grad_accum=2)
    for path, says in ((two, "2 processes, global batch 8"), (one, None)):
        done = llmlab(tmp_path, "train", str(path), **DDP_ENV)
        ok(done)
        header = done.stderr.splitlines()[0]  # (the run's first line: what it is)
        assert (says in header) if says else "global batch" not in header, header
    runs = sorted((tmp_path / "runs" / "d").iterdir())
    assert len(runs) == 2, "a process left a folder of its own"
    ddp, single = runs
    assert read_run_info(ddp)["world_size"] == 2 and read_run_info(ddp)["global_batch"] == 8
    a, b = _train_losses(ddp), _train_losses(single)
    assert len(a) == len(b) == 20
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5
    val = [[r["val_loss"] for r in read_metrics(run) if r.get("type") == "eval"]
           for run in runs]
    assert abs(val[0][-1] - val[1][-1]) < 0.02
    # Rank 0 alone wrote: one metrics.jsonl, every record once, nothing else in the runs folder.
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["d"]
    steps = [r["step"] for r in read_metrics(ddp) if r.get("type") == "train"]
    assert steps == list(range(1, 21))
    assert len(list(ddp.rglob("metrics.jsonl"))) == 1
    # Both runs count every process's tokens: the same tokens per step, the aggregate.
    context = load_session(two).model.context
    for run in runs:
        assert [r["tokens"] for r in read_metrics(run) if r.get("type") == "train"] == \
            [step * 8 * context for step in range(1, 21)]
    # `llmlab runs` says the DDP run's world size, beside the single process's run.
    listed = {line.split()[0]: line for line in
              ok(llmlab(tmp_path, "runs", **DDP_ENV)).splitlines()
              if line.strip().startswith("d/")}
    assert " gpt×2 " in listed[f"d/{ddp.name}"] and " gpt " in listed[f"d/{single.name}"]


def test_a_two_process_job_stopped_through_its_folder_resumes_on_one(
        tmp_path: Path, jobs: JobTracker) -> None:
    # (600 steps: the stop must arrive while it trains, and `llmlab ctl` takes a second to
    # start on a busy machine; 60 steps were over before it once)
    session = _session(tmp_path, max_steps=600, eval_interval=0, nproc=2)
    run_dir, pid = jobs.detach(tmp_path, str(session))
    wait_until(lambda: len(_train_losses(run_dir)) >= 10, what="ten steps")
    stop = ok(llmlab(tmp_path, "ctl", str(run_dir), "stop", **DDP_ENV))
    assert "stop: applied at step" in stop
    wait_until(lambda: not alive(pid), what="the job (all its ranks) to end")
    stopped_at = read_run_info(run_dir)["step"]
    assert read_run_info(run_dir)["status"] == "stopped"
    assert [c.step for c in list_checkpoints(run_dir / "checkpoints")][-1] == stopped_at
    ok(llmlab(tmp_path, "train", str(session), "--resume", str(run_dir), "--nproc", "1",
              **DDP_ENV))
    info = read_run_info(run_dir)
    assert info["status"] == "finished" and info["step"] == 600
    steps = [r["step"] for r in read_metrics(run_dir) if r.get("type") == "train"]
    assert steps == list(range(1, 601)), "steps lost or repeated across the resume"


def test_a_killed_rank_ends_the_job_with_its_run_resumable(
        tmp_path: Path, jobs: JobTracker) -> None:
    session = _session(tmp_path, max_steps=100_000, eval_interval=0, nproc=2,
                       checkpoint_interval=5)
    run_dir, pid = jobs.detach(tmp_path, str(session))
    wait_until(lambda: has_checkpoint(run_dir) and len(_train_losses(run_dir)) >= 8,
               what="a checkpoint")
    ranks = wait_until(lambda: [c for c in _children(pid) if c != pid] or None,
                       what="the ranks")
    jobs.pids += ranks
    beat = json.loads((run_dir / "heartbeat.json").read_text())
    other = [r for r in ranks if r != beat["pid"]]
    assert other, (ranks, beat)
    os.kill(other[0], signal.SIGKILL)
    wait_until(lambda: not alive(pid) and not any(alive(r) for r in ranks), timeout=90,
               what="every process of the job to end after a rank died")
    status = wait_until(lambda: read_run_info(run_dir).get("status") != "running" or
                        llmlab(tmp_path, "runs", **DDP_ENV).stdout.count("lost"),
                        what="the run marked")
    assert status
    # Rank 0 saw its peer go (a collective failed): the run stopped, resumable; had rank 0
    # itself been killed, the heartbeat would say lost.
    info = read_run_info(run_dir)
    assert info["status"] == "stopped: a process of the job died", info
    assert "another process of this job died" in info["error"]
    assert "stopped" in llmlab(tmp_path, "runs", **DDP_ENV).stdout
    assert has_checkpoint(run_dir), "nothing to resume from"
    # The job's launcher says a process failed, whichever failure torchrun saw first: rank 0
    # exits 1 when its peer died, not 2, the code of a refusal (which the launcher leaves to
    # rank 0's own line).
    log = (run_dir / "train.log").read_text()
    assert "training stopped: a process failed (" in log and "rank 0 exit 2" not in log, log


def test_impossible_process_counts_are_one_line(tmp_path: Path) -> None:
    session = _session(tmp_path, max_steps=5)
    cores = len(os.sched_getaffinity(0))
    one_line_exit_2(llmlab(tmp_path, "train", str(session), "--nproc", str(cores + 1),
                           **DDP_ENV))
    bad = one_line_exit_2(llmlab(tmp_path, "train", str(session), "--set", "train.nproc=0",
                                 **DDP_ENV))
    assert "train.nproc" in bad
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("run.json"))



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """A user's own `torchrun --standalone --nproc-per-node 2 -m llmlab train ARGS`."""
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node", "2", "-m", "llmlab", "train", *args],
                          cwd=folder, env=cli_env(folder, **DDP_ENV), capture_output=True,
                          text=True, timeout=120)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA (nccl can run)")
def test_nccl_without_cuda_is_one_line(tmp_path: Path) -> None:
    session = _session(tmp_path, max_steps=5)
    line = one_line_exit_2(llmlab(tmp_path, "train", str(session), "--nproc", "2", "--set",
                                  "train.device=cuda", **DDP_ENV))
    assert "train.device: cuda is not available" in line and "nccl" in line
    # The user's own torchrun: every rank refuses alike; rank 0 alone says it.
    done = _torchrun(tmp_path, str(session), "--set", "train.device=cuda")
    assert done.returncode != 0
    assert done.stderr.count("train.device: cuda is not available") == 1, done.stderr
    assert "internal error" not in done.stderr
    assert not (tmp_path / "runs").exists()


def test_a_runs_dir_rank_0_cannot_write_is_one_line(tmp_path: Path) -> None:
    session = _session(tmp_path, max_steps=5)
    (tmp_path / "afile").write_text("")  # (root writes anywhere: a file where a folder goes)
    where = "train.runs_dir=afile/runs"
    line = one_line_exit_2(llmlab(tmp_path, "train", str(session), "--nproc", "2", "--set",
                                  where, **DDP_ENV))
    assert "afile/runs: cannot create a run folder" in line, line
    # Under the user's own torchrun, rank 1 (which writes nothing) does not go on to wait for
    # rank 0 in a collective and fail with a gloo error: rank 0's one line is the job's.
    done = _torchrun(tmp_path, str(session), "--set", where)
    ours = [x for x in done.stderr.splitlines() if "afile" in x]
    assert len(ours) == 1 and "cannot create a run folder" in ours[0], done.stderr
    assert "internal error" not in done.stderr and "Connection closed" not in done.stderr


def test_a_rendezvous_that_does_not_form_is_one_line_naming_the_endpoint(
        tmp_path: Path) -> None:
    """`llmlab train --nnodes 2 --rdzv-endpoint HOST:PORT`: the machines meet through
    torchrun's c10d rendezvous, every wait bounded by LLMLAB_DIST_TIMEOUT. Alone on an unused
    local port (this machine hosts the rendezvous, nobody joins), and on an address nobody
    answers (TEST-NET-1: this machine only tries to reach it)."""
    session = _session(tmp_path, max_steps=5)
    env = {**DDP_ENV, "LLMLAB_DIST_TIMEOUT": "5"}
    alone = f"127.0.0.1:{_free_port()}"
    line = one_line_exit_2(llmlab(tmp_path, "train", str(session), "--nnodes", "2",
                                  "--rdzv-endpoint", alone, **env))
    assert line.startswith(f"--rdzv-endpoint {alone}: not every one of the 2 machines")
    nobody = "192.0.2.1:29400"
    line = one_line_exit_2(llmlab(tmp_path, "train", str(session), "--nnodes", "2",
                                  "--rdzv-endpoint", nobody, **env))
    assert line.startswith(f"--rdzv-endpoint {nobody}: cannot be reached within 5 s"), line
    for args in (["--nnodes", "2"], ["--nnodes", "0"], ["--nnodes", "2", "--rdzv-endpoint",
                                                         "head"]):
        one_line_exit_2(llmlab(tmp_path, "train", str(session), *args, **env))
    assert not (tmp_path / "runs").exists()


def test_two_machines_meeting_at_a_rendezvous_make_one_run(tmp_path: Path) -> None:
    """Two `llmlab train --nnodes 2` on this host, as on two machines: one job of 2 ranks;
    rank 0 makes the one run folder (neither launcher made one of its own)."""
    session = _session(tmp_path, max_steps=10, eval_interval=0)
    endpoint = f"127.0.0.1:{_free_port()}"
    argv = [sys.executable, "-m", "llmlab", "train", str(session), "--nnodes", "2",
            "--rdzv-endpoint", endpoint]
    env = cli_env(tmp_path, **DDP_ENV)
    first = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        second = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=120)
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == second.returncode == 0, (err, second.stderr)
    (run,) = (tmp_path / "runs" / "d").iterdir()
    info = read_run_info(run)
    assert info["world_size"] == 2 and info["status"] == "finished" and info["step"] == 10
    assert _train_losses(run) and len(_train_losses(run)) == 10


def _train_restarting(tmp_path: Path, session: Path, restarts: int = 1) -> subprocess.Popen:
    """`llmlab train SESSION --nproc 2 --max-restarts N` in the background (stderr kept)."""
    return subprocess.Popen([sys.executable, "-m", "llmlab", "train", str(session), "--nproc",
                             "2", "--max-restarts", str(restarts)], cwd=tmp_path,
                            env=cli_env(tmp_path, **DDP_ENV), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_max_restarts_restart_the_ranks_after_one_is_killed_and_continue_the_run(
        tmp_path: Path) -> None:
    """`llmlab train --nproc 2 --max-restarts 1`: rank 0 (the run's writer) is SIGKILLed;
    torchrun restarts both ranks, which continue the same run from its latest checkpoint:
    one run folder, every step logged once, a record of the restart, the run finished."""
    session = _session(tmp_path, max_steps=600, eval_interval=0, checkpoint_interval=5)
    job = _train_restarting(tmp_path, session)
    try:
        runs = tmp_path / "runs" / "d"
        run_dir = wait_until(lambda: next((r for r in runs.iterdir() if has_checkpoint(r)),
                                          None) if runs.is_dir() else None,
                             what="a checkpoint")
        first = json.loads((run_dir / "heartbeat.json").read_text())["pid"]
        os.kill(first, signal.SIGKILL)
        _, err = job.communicate(timeout=240)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    assert job.returncode == 0, err
    assert [p.name for p in runs.iterdir()] == [run_dir.name]
    info = read_run_info(run_dir)
    assert info["status"] == "finished" and info["step"] == 600, info
    steps = [r["step"] for r in read_metrics(run_dir) if r.get("type") == "train"]
    assert steps == list(range(1, 601)), "steps lost or repeated across the restart"
    (restart,) = [r for r in read_metrics(run_dir) if r.get("type") == "restart"]
    assert restart["attempt"] == 1 and restart["step"] % 5 == 0  # (a checkpoint's step)
    assert json.loads((run_dir / "heartbeat.json").read_text())["pid"] != first
    said = record_event(restart, info)  # (what the Train pane's log says of it)
    assert isinstance(said, msg.Warning) and "restarted" in said.message
    for bad in (["--max-restarts", "-1"], ["--max-restarts", "-1", "--detach"],
                ["--max-restarts", "1", "--nnodes", "2", "--rdzv-endpoint", "head:29400"]):
        assert "--max-restarts" in one_line_exit_2(
            llmlab(tmp_path, "train", str(session), "--nproc", "2", *bad, **DDP_ENV))


def test_a_restart_before_the_first_checkpoint_is_one_line_and_keeps_the_run(
        tmp_path: Path) -> None:
    """No checkpoint yet when a rank dies: the restarted ranks have nothing to continue from;
    they say so once (rank 0 of the first restart: each of the 3 finds the same), and the run
    folder keeps what the first attempt wrote."""
    session = _session(tmp_path, max_steps=100_000, eval_interval=0, checkpoint_interval=0)
    job = _train_restarting(tmp_path, session, restarts=3)
    try:
        runs = tmp_path / "runs" / "d"
        run_dir = wait_until(lambda: next((r for r in runs.iterdir()
                                           if len(_train_losses(r)) >= 5), None)
                             if runs.is_dir() else None, what="five steps")
        ranks = _children(job.pid)
        rank0 = json.loads((run_dir / "heartbeat.json").read_text())["pid"]
        os.kill(next(r for r in ranks if r != rank0), signal.SIGKILL)
        _, err = job.communicate(timeout=240)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    assert job.returncode == 2, err
    assert err.count("nothing to restart from") == 1, err
    assert "it has no checkpoint yet to resume from" in read_run_info(run_dir)["error"]
    assert "Traceback" not in err and "internal error" not in err
    info = read_run_info(run_dir)
    assert info["status"] == "stopped: a process of the job died", info
    steps = _train_losses(run_dir)
    assert len(steps) >= 5 and not has_checkpoint(run_dir)
    assert not [r for r in read_metrics(run_dir) if r.get("type") == "restart"]


def test_a_rank_leaves_with_its_code_and_its_output_flushed_but_no_teardown(
        tmp_path: Path) -> None:
    """`python -m llmlab` as a rank of a job ends through ranks.exit_rank: its status is the
    command's, what it printed (buffered, to pipes) arrives, and the interpreter's teardown,
    where torch's C++ side aborted now and then at a rank's exit, does not run (an atexit hook
    stands for it here)."""
    script = ("import atexit, sys\n"
              "from llmlab import ranks\n"
              "atexit.register(lambda: print('teardown ran', file=sys.stderr))\n"
              "print('rank output', end='')\n"
              "print('rank error', end='', file=sys.stderr)\n"
              "ranks.exit_rank(3)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, env=cli_env(tmp_path), timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (3, "rank output", "rank error")
