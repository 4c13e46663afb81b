"""The app's end of a training job: start it, follow its run folder, steer it.

A training never runs in the app's process tree: `start` launches `llmlab train` as a job of its
own (core.launch), which outlives the app, the terminal and the SSH connection. Whatever job
trains a run, one this app started, one started in another terminal or by an app since closed,
`attach` follows its folder with a `core.follow.RunFollower` on a timer, and hands each event it
reads to `deliver` (the same path the engine's events take: the app, then the panes that asked
for them). Pause, resume, stop, checkpoint and live hyperparameters go into the run folder's
control channel (core.control); the job's answer comes back through the folder too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.message_pump import MessagePump
from textual.timer import Timer

from core import messages as msg
from core.errors import LlmlabError
from core.follow import Attached, RunFollower, record_event
from core.launch import Launched, discard_unstarted, launch_training, log_tail
from core.session import Session
from core.values import EngineState

FOLLOW_INTERVAL = 0.1  # seconds between reads of the run folder (a step reaches the plot
# within this plus the Train pane's redraw period)
STATE_EVERY = 5  # the job's state (heartbeat, run.json) is read every this many reads
# A run attached to with at most this many train records is replayed as events (as if the
# app had followed it from its start); a longer one comes as its history (the Train pane's
# curves, thinned), and its events from then on.
REPLAY_LIMIT = 2000


class JobClient:
    def __init__(self, target: MessagePump, deliver: Callable[[msg.Event], None],
                 on_attached: Callable[[Attached, bool], None],
                 launcher: Callable[..., Launched] = launch_training) -> None:
        self.target = target
        self.deliver = deliver
        self.on_attached = on_attached
        self.launcher = launcher
        self.state = EngineState.IDLE
        self.run_dir: str | None = None
        self.launched: Launched | None = None  # the job this app started, while it lives
        self.follower: RunFollower | None = None
        self._attached = False
        self._reading = False
        self._ticks = 0
        self._timer: Timer | None = None

    # ------------------------------------------------------------------ state

    @property
    def busy(self) -> bool:
        return self.state.busy

    @property
    def started_here(self) -> bool:
        """A job this app started is still training."""
        return self.launched is not None and self.launched.process.poll() is None \
            and self.busy

    # ------------------------------------------------------------------ start, attach

    def start(self, session: Session, resume: str | None = None) -> bool:
        """Launch a job training `session` (or resuming the run folder `resume`) and follow
        it. (False: no engine was replaced, unlike EngineClient.start.)"""
        if self.busy:
            raise LlmlabError("a training run is already going; stop it first")
        launched = self.launcher(session, resume)
        self.follow_new(launched)
        self.launched = launched
        return False

    def follow_new(self, launched: Launched) -> None:
        """Follow a job just launched (by `start`, or a fold of a cross-validation): it is
        preparing until its run folder says more."""
        self.attach(launched.run_dir)
        self.state = EngineState.PREPARING
        self.deliver(msg.Status(EngineState.PREPARING,
                                f"job pid {launched.pid}, log {launched.log_path}"))

    def attach(self, run_dir: str | Path) -> None:
        """Follow the run at `run_dir` (whichever job trains it) from now on; a job followed
        before trains on."""
        if self.launched is not None and self.launched.run_dir != Path(run_dir):
            self.launched = None  # (no longer this app's to stop on quit)
        self.run_dir = str(run_dir)
        self.state = EngineState.IDLE
        self.follower = RunFollower(run_dir)
        self._attached = False
        self._ticks = 0
        if self._timer is None:
            self._timer = self.target.set_interval(FOLLOW_INTERVAL, self._tick,
                                                   name="job-follow")

    def detach(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.follower = None

    async def _tick(self) -> None:
        if self.follower is None or self._reading:
            return
        self._reading = True
        try:
            if not self._attached:
                await self._try_attach()
            else:
                self._follow()
        finally:
            self._reading = False

    async def _try_attach(self) -> None:
        """The run so far, read off the UI thread (a long run's metrics are large); until the
        job has written run.json, watch that it has not died first."""
        follower = self.follower
        assert follower is not None
        attached = await asyncio.to_thread(follower.attach)
        if follower is not self.follower:
            return  # (another run was attached meanwhile)
        if attached is None:
            self._reap_early_death()
            return
        self._attached = True
        self.deliver(attached.started_event())
        replay = attached.train_records <= REPLAY_LIMIT
        if replay:  # (a short run, or one just started: every pane hears every event)
            for record in attached.records:
                if (event := record_event(record, attached.info)) is not None:
                    self.deliver(event)
        self.on_attached(attached, replay)
        self._follow(force_state=True)

    def _follow(self, force_state: bool = False) -> None:
        assert self.follower is not None
        self._ticks += 1
        exited = self.launched is not None and self.launched.process.poll() is not None
        check_state = force_state or exited or self._ticks % STATE_EVERY == 0
        for event in self.follower.poll(state=check_state):
            if isinstance(event, msg.Status):
                self.state = event.state
            self.deliver(event)
        if exited and self.launched is not None and not self.state.busy:
            if self.state is EngineState.FAILED and discard_unstarted(self.launched.run_dir):
                self.detach()  # (refused before its run began: its line was shown)
            self.launched = None  # (reaped by poll(): no zombie left)

    def _reap_early_death(self) -> None:
        """A job that died before writing run.json (a bad corpus...) said why in its log."""
        job = self.launched
        if job is None or job.process.poll() is None:
            return
        self.launched, self.follower = None, None
        line = log_tail(job.log_path) or f"the training job exited ({job.process.returncode})"
        discard_unstarted(job.run_dir)
        self.state = EngineState.FAILED
        self.deliver(msg.Error(line, fatal=True))
        self.deliver(msg.Status(EngineState.FAILED, line))

    # ------------------------------------------------------------------ control

    def send(self, op: str, name: str = "", value: Any = None) -> None:
        from core.control import make_request, send_control

        if self.run_dir is None or not self.busy:
            raise LlmlabError("no training is running")
        send_control(Path(self.run_dir), make_request(op, name, value))

    def pause(self) -> None:
        self.send("pause")

    def resume(self) -> None:
        self.send("resume")

    def stop(self) -> None:
        self.send("stop")

    def checkpoint(self) -> None:
        self.send("checkpoint")

    def set_hparam(self, name: str, value: float) -> None:
        self.send("set", name, value)
