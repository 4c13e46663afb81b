"""Who writes a run folder, and whether it is still alive: the lock and the heartbeat.

A training job claims its run folder before it writes anything there (`RunClaim.acquire`):

    job.lock        held with an exclusive `flock` for the job's whole life; it says which
                    process holds it ({"pid", "host", "since"}). The kernel drops the lock
                    when the process dies, however it dies, so the claim of a dead job is
                    taken over by the next one without anyone cleaning up.
    heartbeat.json  {"time", "pid", "host", "state", "step", "every"}, rewritten atomically
                    every `every` seconds by a thread of the job, and at once when its state
                    changes (running, paused, stopping, then how it ended).

The lock is what keeps two jobs on one machine from writing the same folder. The heartbeat
is what a viewer anywhere reads (another terminal, another machine on a shared filesystem,
where `flock` may not reach): a run whose run.json says "running" but whose heartbeat has
not been refreshed for `stale_after(every)` seconds is lost (core.runs.run_status). A fresh
heartbeat written by another host also refuses a claim, for filesystems without shared locks.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import LlmlabError
from core.fileio import atomic_write_text, read_small_text
from core.text import visible

LOCK_FILE = "job.lock"
HEARTBEAT_FILE = "heartbeat.json"
# Seconds between heartbeats; LLMLAB_HEARTBEAT_S changes it (tests beat fast).
HEARTBEAT_EVERY = 2.0


def heartbeat_every() -> float:
    try:
        every = float(os.environ.get("LLMLAB_HEARTBEAT_S", HEARTBEAT_EVERY))
    except ValueError:
        return HEARTBEAT_EVERY
    return every if 0.05 <= every <= 3600 else HEARTBEAT_EVERY


def stale_after(every: float) -> float:
    """A heartbeat older than this is a dead job: three beats missed, plus slack for a busy
    machine and for clocks of two machines that disagree a little."""
    return 3 * every + 5.0


@dataclass(frozen=True)
class Heartbeat:
    time: float
    pid: int
    host: str
    state: str
    step: int
    every: float

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.time

    def fresh(self, now: float | None = None) -> bool:
        return self.age(now) <= stale_after(self.every)

    def who(self) -> str:
        return visible(f"pid {self.pid} on {self.host}")


def read_heartbeat(run_dir: Path) -> Heartbeat | None:
    """The run's heartbeat; None if it has none (an older run, or one trained in-process
    without a claim) or it cannot be read."""
    try:
        data = json.loads(read_small_text(Path(run_dir) / HEARTBEAT_FILE, limit=1 << 16))
        return Heartbeat(float(data["time"]), int(data["pid"]), str(data["host"]),
                         str(data.get("state", "")), int(data.get("step", 0)),
                         float(data.get("every", HEARTBEAT_EVERY)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class RunClaim:
    """This process's claim on a run folder: the held lock, and the heartbeat thread."""

    def __init__(self, run_dir: Path, lock_fd: int, every: float):
        self.run_dir = Path(run_dir)
        self.every = every
        self.state = "preparing"
        self.step = 0
        self._lock_fd: int | None = lock_fd
        self._wake = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat_forever, name="llmlab-heartbeat",
                                        daemon=True)

    @classmethod
    def acquire(cls, run_dir: Path, announce: bool = True) -> RunClaim:
        """Claim `run_dir`, or raise LlmlabError naming the live job that holds it.
        `announce` False: hold the lock but write nothing yet (a resume checks the run
        first, and a run it refuses is left as it was); `announce()` then starts the
        heartbeat."""
        run_dir = Path(run_dir)
        every = heartbeat_every()
        other = read_heartbeat(run_dir)
        fd = _open_lock(run_dir)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise busy_error(run_dir, _holder(run_dir, other)) from None
        except OSError as e:  # (a filesystem without locks: the heartbeat still guards)
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP):
                os.close(fd)
                raise
        if other is not None and other.host != socket.gethostname() and other.fresh() \
                and other.state not in _ENDED:
            os.close(fd)
            raise LlmlabError(f"{run_dir}: a job is already writing this run ({other.who()}, "
                              f"heartbeat {other.age():.0f} s ago); stop it first")
        claim = cls(run_dir, fd, every)
        if announce:
            claim.announce()
        return claim

    def announce(self) -> None:
        """Say who holds the run (the lock file's owner) and start the heartbeat."""
        if self._thread.is_alive() or self._lock_fd is None:
            return
        self._write_lock_owner()
        self._write_heartbeat()
        self._thread.start()

    def beat(self, state: str | None = None, step: int | None = None) -> None:
        """Note the job's state and step; a new state is written at once, a step with the
        next beat."""
        if step is not None:
            self.step = step
        if state is not None and state != self.state:
            self.state = state
            self._wake.set()

    def release(self, final_state: str | None = None) -> None:
        """End the claim: a last heartbeat with how the job ended, then the lock goes."""
        if self._lock_fd is None:
            return
        if final_state is not None:
            self.state = final_state
        self._done.set()
        self._wake.set()
        if self._thread.is_alive():  # (never announced: nothing was written, none is now)
            self._thread.join(timeout=5)
            try:
                self._write_heartbeat()
            except OSError:
                pass
        fd, self._lock_fd = self._lock_fd, None
        os.close(fd)  # (closing the descriptor drops the flock)

    def _beat_forever(self) -> None:
        while not self._done.is_set():
            self._wake.wait(self.every)
            self._wake.clear()
            if self._done.is_set():
                return
            try:
                self._write_heartbeat()
            except OSError:  # a full disk: the training itself will say so
                pass

    def _write_heartbeat(self) -> None:
        beat = {"time": time.time(), "pid": os.getpid(), "host": socket.gethostname(),
                "state": self.state, "step": self.step, "every": self.every}
        atomic_write_text(self.run_dir / HEARTBEAT_FILE, json.dumps(beat) + "\n")

    def _write_lock_owner(self) -> None:
        owner = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "since": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode()
        assert self._lock_fd is not None
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, owner + b"\n", 0)


_ENDED = ("finished", "stopped", "failed")


def busy_error(run_dir: Path, who: str) -> LlmlabError:
    return LlmlabError(f"{run_dir}: a job is already writing this run ({who}); stop it "
                       f"first (llmlab ctl {run_dir} stop)")


def claim_holder(run_dir: Path) -> str | None:
    """Who holds the run's lock now ("pid N on HOST, since ..."); None when no job on this
    machine does. A look only: nothing is created or written, the lock is not taken."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(Path(run_dir), read_heartbeat(run_dir))
    except OSError:
        return None
    finally:
        os.close(fd)  # (and with it the shared lock, if it was taken)
    return None


def _open_lock(run_dir: Path) -> int:
    """The lock file, opened for writing; never through a symlink, never a non-file."""
    path = run_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise LlmlabError(f"{path}: cannot be opened ({e.strerror or e})") from None
    import stat

    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LlmlabError(f"{path}: not a regular file")
    return fd


def _holder(run_dir: Path, beat: Heartbeat | None) -> str:
    """Who holds the lock, as its file (or else the heartbeat) says."""
    try:
        owner: dict[str, Any] = json.loads(read_small_text(run_dir / LOCK_FILE, limit=4096))
        return visible(f"pid {int(owner['pid'])} on {owner['host']}, "
                       f"since {owner.get('since', '?')}")
    except (OSError, ValueError, KeyError, TypeError):
        return beat.who() if beat is not None else "another process"
