"""The app with the real engine process (not a test double): its events wake the app through
the process's pipe, with no timer polling 20 times a second, nothing else ticks while the app
is idle, and a process that dies is reported from its exit alone."""

from __future__ import annotations

import asyncio
import copy
import os
import signal
from pathlib import Path

import pytest
from helpers.tui import sync, wait_for

from tui.app import LlmlabApp
from tui.panes.generate import GeneratePane

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _timer_names(app: LlmlabApp) -> set[str]:
    return {timer.name for timer in app._timers if timer._active.is_set()}


def _ticking(app: LlmlabApp) -> list[str]:
    """The timers running now in the app, its screen and every widget (Textual's own
    included: a paused one, as the screen's update timer while nothing changes, is not)."""
    pumps = [app, app.screen, *app.screen.query("*")]
    return [f"{type(pump).__name__}:{timer.name}" for pump in pumps
            for timer in pump._timers if timer._active.is_set()]


@sync
async def test_the_engine_process_wakes_the_app_and_its_death_is_reported(
        trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMLAB_CACHE_DIR", str(tmp_path / "cache"))  # (engine.log goes there)
    session, _ = trained
    app = LlmlabApp(copy.deepcopy(session), None)  # the real factory: a spawned process
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("g")
        pane = app.query_one(GeneratePane)
        await wait_for(pilot, lambda: pane.loaded is not None and app.model_source, 120,
                       "the model, loaded by the engine process")
        assert "engine-poll" not in _timer_names(app)

        await pilot.press("n")
        await wait_for(pilot, lambda: pane.done, 60, "a generation")
        column = pane.column("dense")
        assert column.state == "done" and column.tokens == app.session.generate.max_tokens

        for key, name in (("r", "runs"), ("k", "sweep")):  # built and shown, then hidden
            await pilot.press(key)
            await wait_for(pilot, lambda name=name: app.current_pane == name, 10,
                           f"the {name} pane")
        await pilot.press("g")
        await wait_for(pilot, lambda: pane.display, 10, "the Generate pane again")

        # quiet: nothing wakes the app for the engine (a timer would tick 20 times a second)
        polls = 0
        real_poll = app.client.poll

        def counted() -> int:
            nonlocal polls
            polls += 1
            return real_poll()

        monkeypatch.setattr(app.client, "poll", counted)
        await asyncio.sleep(1.0)
        assert polls == 0
        # nor a pane's timer (the plots' redraw ticked 4 times a second, the Runs pane's look
        # at live runs and the Sweep pane's reads every 2 s even while hidden)
        assert _ticking(app) == []

        os.kill(app.client.pid, signal.SIGKILL)
        await wait_for(pilot, lambda: any("exited unexpectedly" in n.message
                                          for n in app._notifications), 30,
                       "the engine's death reported")
        assert polls >= 1
        await asyncio.sleep(0.3)
        settled = polls
        await asyncio.sleep(0.5)
        assert polls == settled  # the dead process's pipe no longer wakes the app
