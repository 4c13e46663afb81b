"""Quitting: what the app asks first, and what it stops on the way out.

A mixin of `tui.app.LlmlabApp` (`self` is the app). A training job this app started goes on
without it unless the user says to stop it (tui.screens.quit_job); the app's own engine (the
workbench) always ends with the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess

from core.errors import LlmlabError
from tui.screens.confirm import ConfirmScreen
from tui.screens.quit_job import QuitJobScreen
from tui.widgets.title_bar import TitleBar

JOB_STOP_TIMEOUT = 120  # seconds a quitting app waits for its job to save and stop
MOUNT_WAIT = 5.0  # seconds a quitting app waits for a pane it is mounting (the Model form)


class QuitActions:
    """ctrl+q and the ways out (a mixin of the app)."""

    async def action_quit(self) -> None:
        if self._quitting:
            return
        if self._jobs and self.training.started_here:
            self.ask_about_job_on_quit()
            return
        reasons = []
        if self.training.busy and not self._jobs:
            reasons.append("Training is running: it will stop and save a checkpoint.")
        if self.dirty:
            reasons.append("The session has unsaved edits.")
        if not reasons:
            await self.quit_cleanly()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self.quit_cleanly(), name="quit", exclusive=True)

        self.push_screen(ConfirmScreen("\n".join(reasons) + "\nQuit?", yes="quit",
                                       no="stay"), answered)

    async def quit_cleanly(self) -> None:
        """Stop the app's engine (the workbench; in-process, a running training saves a
        checkpoint), wait for its process to end, then exit. A job trains on."""
        self._quitting = True
        with contextlib.suppress(TimeoutError):  # (a pane being mounted: let it finish)
            await asyncio.wait_for(asyncio.gather(*(p.settled.wait() for p in self.panes())),
                                   MOUNT_WAIT)
        if self.client.alive:
            if not self._jobs:  # (the engine trains in-process: it stops and saves first)
                self.query_one(TitleBar).state = "stopping"
                self.notify("stopping the engine, saving a checkpoint …", timeout=30)
            await self.client.shutdown()
        self.exit()

    def ask_about_job_on_quit(self) -> None:
        """Quitting while a job this app started trains: leave it, stop it, or stay."""
        extra = "\nThe session has unsaved edits: quitting drops them." if self.dirty else ""

        def answered(choice: str | None) -> None:
            if choice == "leave":
                self.run_worker(self.quit_cleanly(), name="quit", exclusive=True)
            elif choice == "stop":
                self.run_worker(self._stop_job_then_quit(), name="quit", exclusive=True)

        self.push_screen(QuitJobScreen(str(self.training.run_dir), extra), answered)

    async def _stop_job_then_quit(self) -> None:
        """Stop the job (it saves a checkpoint), wait for its process to end, then quit: no
        process is left behind."""
        job = self.training.launched
        try:
            self.training.stop()
        except LlmlabError as e:
            self.notify(str(e), severity="warning")
        self.notify("stopping the training job, saving a checkpoint …", timeout=30)
        if job is not None:
            try:
                await asyncio.to_thread(job.process.wait, JOB_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.notify(f"the job (pid {job.pid}) did not stop within "
                            f"{JOB_STOP_TIMEOUT} s; it is left running", severity="error")
        await self.quit_cleanly()
