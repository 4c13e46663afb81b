"""A training of several processes (torchrun, DDP on gloo) as the app shows it: one run, with
its world size and global batch in the Train pane and its processes in the Runs pane. The job
is a real 2-process `llmlab train --detach`; every process it starts is gone at the end."""

from __future__ import annotations

import asyncio
from pathlib import Path

from helpers.jobs import JobTracker, alive, train_steps, until, wait_until
from helpers.tui import screen_text, small_session, wait_for

from core.runs import read_run_info
from core.session import load_session, save_session
from tui.app import LlmlabApp
from tui.widgets.event_log import EventLog

SIZE = (80, 24)


def test_the_app_shows_a_two_process_job_as_one_run_with_its_world_size(
        tmp_path: Path, jobs: JobTracker, monkeypatch) -> None:
    monkeypatch.setenv("LLMLAB_HEARTBEAT_S", "0.5")
    path = tmp_path / "s.toml"
    save_session(small_session(tmp_path, name="s", log_interval=1, runs_dir="runs",
                               batch_size=4, nproc=2), path)
    run_dir, pid = jobs.detach(tmp_path, str(path))
    assert until(lambda: len(train_steps(run_dir)) >= 2, 120), "no step"

    async def watch() -> None:
        app = LlmlabApp(load_session(path), path)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.training.state == "running", 60, "the attach")
            log = app.train_pane.query_one(EventLog)
            header = await wait_for(pilot, lambda: next(
                (t for t in log.texts if t.startswith("gpt,")), None), 30, "the run's header")
            assert "2 processes, global batch 8" in header, header
            await pilot.press("r")  # the Runs pane: one run, its processes beside its model
            pane = app.query_one("#runs")
            await wait_for(pilot, lambda: [r.world_size for r in pane.runs] == [2], 30,
                           "the run listed")
            await wait_for(pilot, lambda: "gpt×2" in screen_text(app), 10,
                           "gpt×2 in the table")
            await pilot.press("t", "x")  # the Train pane, stop
            await wait_for(pilot, lambda: app.training.state == "stopped", 90, "the stop")
            await app.action_quit()

    asyncio.run(watch())
    wait_until(lambda: not alive(pid), 60, "the job (all its ranks) to end")
    assert read_run_info(run_dir)["status"] == "stopped"
