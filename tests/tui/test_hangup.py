"""When its terminal goes away (SIGHUP: a dropped SSH session, a killed tmux) during a
training, the app exits, leaving none of its own processes behind (issue 16, item 6), and the
training, a job of its own since issue 12, goes on: the hang-up does not reach it. The app
runs in a real pseudo-terminal whose master side is closed; the job is then stopped from the
command line (`llmlab ctl RUN stop`), with a checkpoint, and exits."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.checkpoint import list_checkpoints
from core.run_claim import read_heartbeat
from core.runs import read_metrics, read_run_info

TINY = """name = "s"
[data]
corpus = "sample:synthetic"
[model]
n_layer = 1
n_embd = 32
n_head = 2
context = 16
[train]
batch_size = 8
max_steps = 1000000
eval_interval = 0
device = "cpu"
[optim]
warmup_steps = 5
"""


def _drain(fd: int, until, limit: float) -> bool:
    """Read the terminal until `until()` holds (True) or `limit` seconds pass (False)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if until():
            return True
        if select.select([fd], [], [], 0.1)[0]:
            try:
                os.read(fd, 1 << 16)
            except OSError:
                return until()
    return until()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


def _last_step(run_dir: Path) -> int:
    return max((r["step"] for r in read_metrics(run_dir) if r.get("type") == "train"),
               default=0)


def _wait(condition, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is not alive
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_the_app_exits_when_its_terminal_hangs_up_during_a_training(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(TINY)
    env = {**os.environ, "TERM": "xterm-256color", "OMP_NUM_THREADS": "1",
           "LLMLAB_CACHE_DIR": str(tmp_path / "cache"), "LLMLAB_CONFIG_DIR": str(tmp_path)}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the app, in the pseudo-terminal
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-m", "llmlab", "s.toml"], env)
    job = None
    helpers: list[int] = []
    try:
        runs = tmp_path / "runs" / "s"

        def checkpointed_run() -> bool:
            return any(list_checkpoints(r / "checkpoints") for r in runs.glob("*"))

        assert not _drain(fd, lambda: False, 6)  # let the app draw its first screen
        os.write(fd, b"s")  # train
        assert _drain(fd, lambda: runs.is_dir() and any(runs.iterdir()), 120), "no run began"
        (run_dir,) = runs.iterdir()
        assert _drain(fd, lambda: any(r.get("type") == "train" for r in read_metrics(run_dir)),
                      120), "the run made no step"
        job = read_heartbeat(run_dir)
        assert job is not None, "the training is not a job with a heartbeat"
        helpers = _children(pid)
        assert job.pid in helpers, "the job was not started by the app"
        os.close(fd)  # the terminal goes away: the kernel sends SIGHUP
        for _ in range(600):  # a bounded wait (60 s), no wall time asserted
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the app is still alive after its terminal went away")
        assert os.waitstatus_to_exitcode(status) == 0
        own = [h for h in helpers if h != job.pid]  # the workbench engine, if one started
        for _ in range(100):
            if not any(_alive(h) for h in own):
                break
            time.sleep(0.1)
        assert not any(_alive(h) for h in own), "a process of the app outlived it"
        steps = _last_step(run_dir)
        assert _wait(lambda: _last_step(run_dir) > steps, 60), "the job stopped training"
        assert _alive(job.pid)
        stop = subprocess.run([sys.executable, "-m", "llmlab", "ctl", str(run_dir), "stop"],
                              capture_output=True, text=True, env=env, timeout=120)
        assert stop.returncode == 0, stop.stderr
        assert _wait(lambda: not _alive(job.pid), 60), "the job did not exit after stop"
        assert checkpointed_run(), "the run was stopped without a checkpoint"
        assert read_run_info(run_dir)["status"] == "stopped"
    finally:
        for p in [pid, *helpers, *([job.pid] if job else [])]:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
