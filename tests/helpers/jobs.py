"""Training jobs in tests: started as a user starts them (`llmlab train --detach`), watched
through their run folder, and never left behind: `JobTracker.finish` kills whatever a test
started that still lives and says so, so the test fails instead of leaking a process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from helpers.cli import ok

# Fast heartbeats (a lost job shows in under two seconds), one thread (the cores are shared,
# and exact-resume comparisons need the same order of sums in both runs).
JOB_ENV = {"LLMLAB_HEARTBEAT_S": "0.2", "LLMLAB_THREADS": "1", "OMP_NUM_THREADS": "1"}

T = TypeVar("T")
# `llmlab ARGS` (python -c LAUNCHER ARGS), then a check of what it imported.
LAUNCHER = ("import sys\n"
            "from llmlab.cli import main\n"
            "code = main(sys.argv[1:])\n"
            "assert 'torch' not in sys.modules, 'the launcher imported torch'\n"
            "sys.exit(code)\n")


def alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie nobody reaped yet does not: its job ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return not Path("/proc/self").exists()  # (gone meanwhile; or a system without /proc)
    return state != "Z"


def wait_until(condition: Callable[[], T], timeout: float = 120, what: str = "") -> T:
    """The first true value of `condition()`, polled; AssertionError after `timeout` seconds
    (generous: the machine is shared; no test asserts how long anything took)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


class JobTracker:
    """The jobs a test started."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    def detach(self, cwd: Path, *args: str) -> tuple[Path, int]:
        """`llmlab train ARGS --detach` in `cwd`: (the run folder, the job's pid) it printed.
        The launcher itself never imports torch (it returns at once; the job trains)."""
        env = {**os.environ, "LLMLAB_CACHE_DIR": str(cwd / "cache"), **JOB_ENV}
        out = ok(subprocess.run([sys.executable, "-c", LAUNCHER, "train", *args, "--detach"],
                                cwd=cwd, env=env, capture_output=True, text=True,
                                timeout=120))
        found = re.match(r"training in the background: pid (\d+), run folder (.+)$",
                         out.splitlines()[0])
        assert found, out
        pid = int(found.group(1))
        self.pids.append(pid)
        return Path(found.group(2)), pid

    def finish(self) -> list[int]:
        """Kill every job still alive (its whole session); the pids that were."""
        left = [pid for pid in self.pids if alive(pid)]
        for pid in left:
            for kill in (os.killpg, os.kill):  # (a detached job leads its own session)
                try:
                    kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        for pid in left:
            wait_until(lambda pid=pid: not alive(pid), timeout=60, what=f"pid {pid} to die")
        return left


def train_steps(run_dir: Path) -> list[int]:
    """The steps of the run's train records, in the order logged."""
    from core.runs import read_metrics

    return [r["step"] for r in read_metrics(run_dir) if r.get("type") == "train"]


def until(condition: Callable[[], object], limit: float) -> bool:
    """Whether `condition()` became true within `limit` seconds (for an assert with its own
    message, where `wait_until` would raise its own)."""
    try:
        wait_until(condition, limit)
    except AssertionError:
        return False
    return True


def job_pids(folder: Path) -> list[int]:
    """The live jobs of the trials under `folder`: each pid a run.json names, if that process
    is still the one that wrote it (started when it says; a pid can be given again)."""
    from core.runs import process_start, read_run_info

    pids = []
    for path in (folder / "runs").glob("*/*/run.json"):
        info = read_run_info(path.parent)
        pid = info.get("pid")
        if isinstance(pid, int) and process_start(pid) == info.get("pid_start"):
            pids.append(pid)
    return pids
