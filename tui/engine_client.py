"""The bridge between the app and the engine process.

`EngineClient` owns the `core.worker.EngineProcess` (spawned: the UI process never imports
torch), sends it commands, and reads its events when its pipe wakes the app (at most 20 times
a second, so a burst is read in batches; never while the engine is quiet) to post each as a
`tui.messages.EngineEvent` to the app, and a copy to every pane subscribed to its type.
Commands carry their request ids from when they are made (core.messages.Command), so the pane
that made one knows the id its answers and errors will carry.
The engine is bound to the session it was spawned with, so a Start with an edited session
spawns a fresh engine (the old, idle one is shut down in the background).
"""

from __future__ import annotations

import asyncio
import copy
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from textual.message_pump import MessagePump
from textual.timer import Timer

from core import messages as msg
from core.errors import LlmlabError
from core.session import Session
from core.values import EngineState
from core.worker import EngineProcess
from tui.messages import EngineEvent

# Events are read at most this often (and polled this often from an engine without file
# descriptors to wait on, as a test's). A timer polling 20 times a second woke the idle app 20
# times a second; woken by the pipe it draws a generation's text sooner and sleeps otherwise.
POLL_INTERVAL = 1 / 20
ENGINE_LOG = "engine.log"
def engine_log_path() -> Path:
    """Where the engine process's stdout/stderr go (the app owns the terminal)."""
    from core.dataset import cache_root

    return cache_root() / ENGINE_LOG


def quiet_engine(session: Session) -> EngineProcess:
    """The engine process, its output sent to `engine_log_path()` (the app owns the
    terminal; a torch warning must not scribble over the screen)."""
    return EngineProcess(session, log_path=engine_log_path())


@contextmanager
def real_stdio() -> Iterator[None]:
    """The interpreter's own stdout/stderr while a process starts: the app replaces them with
    objects without a file descriptor, and multiprocessing's resource tracker needs one."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


class EngineClient:
    def __init__(self, target: MessagePump,
                 factory: Callable[[Session], EngineProcess] = quiet_engine,
                 observe: Callable[[msg.Event], None] | None = None) -> None:
        """`observe` sees every event before any widget is told of it: the app keeps its
        record of the engine (the loaded model) there, so a pane handling its copy of an
        event reads the app's state as the event left it."""
        self.target = target
        self.factory = factory
        self.observe = observe
        self.engine: EngineProcess | None = None
        self.state = EngineState.IDLE
        self.run_dir: str | None = None
        self._spawned_for: tuple[Any, ...] | None = None
        self._starting = False  # a Start is sent and not yet acknowledged
        self._timer: Timer | None = None  # polling an engine without wakeup_fds
        self._watched: Any = None  # the engine whose file descriptors wake the app
        self._fds: list[int] = []  # those added to the event loop now
        self._rearm: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the app's, which watches them
        self._retiring: list[threading.Thread] = []
        self._subscribers: dict[type[msg.Event], list[MessagePump]] = {}
        self.spawned = 0  # engines started so far: a new one has no model loaded
        # Trainings are jobs (tui.job_client): this engine's own state says nothing of them,
        # so its Status events are kept from the app and the panes.
        self.workbench_only = False

    # ------------------------------------------------------------------ state

    @property
    def busy(self) -> bool:
        """A run is being prepared, trains, is paused or is stopping."""
        return self._starting or self.state.busy

    @property
    def alive(self) -> bool:
        return self.engine is not None and self.engine.alive

    @property
    def pid(self) -> int | None:
        return self.engine.process.pid if self.engine is not None else None

    # ------------------------------------------------------------------ commands

    def start(self, session: Session, resume: str | None = None) -> bool:
        """Start training `session` (resuming the run folder `resume`); True if that took a
        fresh engine (which has no model loaded)."""
        if self.busy:
            raise LlmlabError("a training run is already going; stop it first")
        fresh = self._spawn(session, same_session=True)
        assert self.engine is not None
        self.engine.send(msg.Start(resume))
        self._starting = True
        self.state = EngineState.PREPARING
        return fresh

    def ensure(self, session: Session) -> bool:
        """An engine to send workbench commands to (any session will do: a loaded model
        brings its own); True if a fresh one was started."""
        return self._spawn(session, same_session=False)

    def _spawn(self, session: Session, same_session: bool) -> bool:
        key = (session.to_dict(), session.base_dir)
        if self.alive and (not same_session or key == self._spawned_for):
            self._ensure_polling()
            return False
        self._retire()
        with real_stdio():
            self.engine = self.factory(copy.deepcopy(session)).start()
        self._spawned_for = key
        self.spawned += 1
        self._ensure_polling()
        return True

    def send(self, command: msg.Command) -> None:
        if not self.alive:
            raise LlmlabError("the engine is not running")
        assert self.engine is not None
        self.engine.send(command)

    def pause(self) -> None:
        self.send(msg.Pause())

    def resume(self) -> None:
        self.send(msg.Resume())

    def stop(self) -> None:
        self.send(msg.Stop(checkpoint=True))

    def set_hparam(self, name: str, value: float) -> None:
        self.send(msg.SetHparam(name, value))

    # ------------------------------------------------------------------ events

    def subscribe(self, widget: MessagePump, *kinds: type[msg.Event]) -> None:
        """Post the engine events of `kinds` to `widget` as well (they do not bubble from it:
        the app gets its own copy)."""
        for kind in kinds:
            self._subscribers.setdefault(kind, []).append(widget)

    def _ensure_polling(self) -> None:
        """Read the engine's events as they come: woken by its file descriptors where it has
        them (core.worker.EngineProcess.wakeup_fds), else polled on a timer."""
        engine = self.engine
        if engine is None or engine is self._watched:
            return
        self._unwatch()
        if self._watch(engine):
            return
        if self._timer is None:
            self._timer = self.target.set_interval(POLL_INTERVAL, self.poll, name="engine-poll")

    def _watch(self, engine: Any) -> bool:
        fds = engine.wakeup_fds() if hasattr(engine, "wakeup_fds") else []
        if not fds:
            return False
        try:
            loop = asyncio.get_running_loop()
            for fd in fds:
                loop.add_reader(fd, self._woken, engine)
        except (RuntimeError, NotImplementedError):  # no loop yet; a loop without readers
            return False
        self._watched, self._fds, self._loop = engine, fds, loop
        return True

    def _unwatch(self) -> None:
        """Stop listening to the engine's file descriptors. (From another thread, as `close`
        may be called, the event loop is left alone: the next wake-up finds the engine
        drained and removes them.)"""
        self._watched = None
        if not self._on_loop():
            return
        self._remove_readers()
        if self._rearm is not None:
            self._rearm.cancel()
            self._rearm = None

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _remove_readers(self) -> None:
        if self._fds and self._loop is not None:
            for fd in self._fds:
                self._loop.remove_reader(fd)
            self._fds = []

    def _woken(self, engine: Any) -> None:
        """The engine's pipe has events, or its process ended: read them (through the app's
        message queue, so an error is handled as any other), then listen again after
        POLL_INTERVAL unless the engine has ended and everything it sent was read."""
        self._remove_readers()
        if engine is not self.engine:
            return

        def read_and_rearm() -> None:
            self.poll()
            if self.engine is engine and not engine.drained:
                self._rearm = asyncio.get_running_loop().call_later(
                    POLL_INTERVAL, self._listen_again, engine)

        self.target.call_later(read_and_rearm)

    def _listen_again(self, engine: Any) -> None:
        self._rearm = None
        if engine is self.engine and engine is self._watched and not self._fds:
            self._watch(engine)

    def poll(self) -> int:
        """Post the engine's waiting events; the number posted."""
        if self.engine is None:
            return 0
        events = self.engine.poll(limit=500)
        for event in events:
            self._dispatch(event)
        return len(events)

    def _dispatch(self, event: msg.Event) -> None:
        if isinstance(event, msg.Status):
            if self._starting and event.state is EngineState.IDLE:
                return  # a fresh engine saying hello before it sees the Start
            self._starting = False
            self.state = event.state
            if self.workbench_only:
                return
        elif isinstance(event, msg.RunStarted):
            self.run_dir = event.run_dir
        self.deliver(event)

    def deliver(self, event: msg.Event) -> None:
        """Hand `event` to the app (`observe`, then an EngineEvent) and to the panes that
        asked for its type; training jobs' events (tui.job_client) come this way too."""
        if self.observe is not None:
            self.observe(event)
        self.target.post_message(EngineEvent(event))
        for widget in self._subscribers.get(type(event), ()):
            copy_for = EngineEvent(event)
            copy_for.stop()  # handled there only, never bubbling to the app a second time
            widget.post_message(copy_for)

    # ------------------------------------------------------------------ endings

    def _retire(self) -> None:
        """Shut the current (idle) engine down in the background."""
        self._unwatch()
        old, self.engine = self.engine, None
        if old is None:
            return
        thread = threading.Thread(target=old.close, kwargs={"timeout": 15.0},
                                  name="llmlab-engine-close", daemon=True)
        thread.start()
        self._retiring.append(thread)

    def _join_retiring(self, timeout: float) -> None:
        for thread in self._retiring:
            thread.join(timeout)
        self._retiring = [t for t in self._retiring if t.is_alive()]

    def close(self, timeout: float = 60.0) -> list[msg.Event]:
        """Shut the engine down (a running training stops with a checkpoint) and wait for its
        process to end; blocking. The events that came meanwhile are returned."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._unwatch()
        late: list[msg.Event] = []
        if self.engine is not None:
            late = self.engine.close(timeout)
        self._join_retiring(timeout)
        self._starting = False
        return late

    async def shutdown(self, timeout: float = 60.0) -> None:
        """`close` without blocking the screen; the late events are posted as usual."""
        self._unwatch()
        late = await asyncio.to_thread(self.close, timeout)
        for event in late:
            self._dispatch(event)
