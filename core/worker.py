"""The engine in a background process, for a UI that must never freeze or die with it.

`EngineProcess` spawns (never forks: the parent may have threads) a process that imports
torch, builds an `Engine` and serves commands from a queue, reporting events on another. The
parent never imports torch. If the process dies (a segfault, the OOM killer), `poll` turns
that into an `Error` event instead of leaving the UI waiting.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import threading
import time
import traceback
from pathlib import Path

from core import messages as msg
from core.session import Session, session_from_dict
from core.values import EngineState


def _serve(session_dict: dict, base_dir: str | None, commands, events,
           log_path: str | None = None) -> None:
    """The worker process's main: everything it reports goes through `events`; anything it
    prints (a torch warning) goes to `log_path` when given, never over the UI's screen."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C belongs to the UI, which asks first
    # A hang-up too: the UI then stops the run with a checkpoint (and if it dies instead,
    # _watch_parent ends this process).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if log_path:
        _redirect_output(Path(log_path))
    threading.Thread(target=_watch_parent, args=(os.getppid(), commands, events),
                     name="llmlab-parent-watch", daemon=True).start()
    try:
        from core.device import flush_denormals

        flush_denormals()  # before torch's thread pool exists: its threads inherit it
        from core.engine import Engine

        session = session_from_dict(session_dict, Path(base_dir) if base_dir else None)
        Engine(session, events.put, commands).serve()
    except BaseException as e:  # report, never die silently
        events.put(msg.Error(f"engine failed: {type(e).__name__}: {e}", fatal=True,
                             details={"traceback": traceback.format_exc()}))
        events.put(msg.Status(EngineState.FAILED, str(e)))


def _redirect_output(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _watch_parent(parent_pid: int, commands, events, every: float = 1.0) -> None:
    """If the UI dies without a word (kill -9, a dropped SSH session), shut down as if it had
    asked: training stops at the next step with a checkpoint, and no orphan trains on."""
    while os.getppid() == parent_pid:
        time.sleep(every)
    events.cancel_join_thread()  # nobody reads events any more: do not wait to flush them
    commands.put(msg.Shutdown())


class EngineProcess:
    """A spawned engine process: `send` commands, `poll` events, `close` when done."""

    def __init__(self, session: Session, log_path: str | os.PathLike | None = None):
        ctx = mp.get_context("spawn")
        self.commands = ctx.Queue()
        self.events = ctx.Queue()
        base_dir = str(session.base_dir) if session.base_dir else None
        self.process = ctx.Process(target=_serve, name="llmlab-engine", daemon=True,
                                   args=(session.to_dict(), base_dir, self.commands,
                                         self.events, str(log_path) if log_path else None))
        self._reported_death = False

    def start(self) -> EngineProcess:
        self.process.start()
        return self

    def send(self, command: msg.Command) -> None:
        self.commands.put(command)

    def poll(self, timeout: float = 0.0, limit: int = 1000) -> list[msg.Event]:
        """Events waiting now (waiting up to `timeout` for the first one)."""
        out: list[msg.Event] = []
        try:
            out.append(self.events.get(timeout=timeout) if timeout else
                       self.events.get_nowait())
            while len(out) < limit:
                out.append(self.events.get_nowait())
        except queue.Empty:
            pass
        if not out and not self.process.is_alive() and not self._reported_death:
            self._reported_death = True
            code = self.process.exitcode
            if code not in (0, None):
                out.append(msg.Error(f"engine process exited unexpectedly (code {code})"))
                out.append(msg.Status(EngineState.FAILED, f"engine exited with code {code}"))
        return out

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    @property
    def drained(self) -> bool:
        """The process has ended and `poll` has returned everything it sent."""
        return self._reported_death

    def wakeup_fds(self) -> list[int]:
        """File descriptors that become readable when `poll` has something to return: events
        waiting, or the process ended. A UI can wait on them instead of polling on a timer.
        Empty if this Python's multiprocessing queue hides its pipe (`_reader` is not public)."""
        reader = getattr(self.events, "_reader", None)
        if reader is None or self.process.pid is None:
            return []
        return [reader.fileno(), self.process.sentinel]

    def close(self, timeout: float = 30.0) -> list[msg.Event]:
        """Shut down (a running training is stopped with a checkpoint first); return the
        events that came meanwhile. Events are drained while waiting, because a child cannot
        exit while its queue still holds data nobody reads."""

        late: list[msg.Event] = []
        if self.process.is_alive():
            self.send(msg.Shutdown())
            deadline = time.monotonic() + timeout
            while self.process.is_alive() and time.monotonic() < deadline:
                late += self.poll(timeout=0.1)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        late += self.poll()
        self.commands.cancel_join_thread()
        self.events.cancel_join_thread()
        return late

    def __enter__(self) -> EngineProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
