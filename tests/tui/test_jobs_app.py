"""Trainings outlive the app (issue 12), the way a user meets it: a training started from the
Train pane survives the app being killed, and a reopened app attaches to it; a training
started headless in another terminal is followed and steered (pause, lr, resume, stop) from
the app. Every process a test starts is gone when it ends."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers.jobs import alive, train_steps, until
from helpers.tui import (
    notifications,
    paste,
    settle,
    small_session,
    train_tiny_run,
    wait_for,
)

from core.run_claim import read_heartbeat
from core.runs import has_checkpoint, read_metrics, read_run_info
from core.session import load_session, save_session
from tui.app import LlmlabApp
from tui.screens.path_picker import PathPickerScreen

SIZE = (100, 30)


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "TERM": "xterm-256color", "OMP_NUM_THREADS": "1",
            "LLMLAB_HEARTBEAT_S": "0.5", "LLMLAB_CONFIG_DIR": str(tmp_path)}


def _session_file(tmp_path: Path) -> Path:
    session = small_session(tmp_path, name="s", log_interval=5, checkpoint_interval=200,
                            runs_dir="runs")
    path = tmp_path / "s.toml"
    save_session(session, path)
    return path


def test_a_training_started_in_the_app_outlives_its_kill_and_is_attached_again(
        tmp_path: Path, monkeypatch) -> None:
    path = _session_file(tmp_path)
    env = _env(tmp_path)
    pid, fd = pty.fork()
    if pid == 0:  # the child: the app in a terminal, as a user runs it
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-m", "llmlab", "s.toml"], env)
    runs = tmp_path / "runs" / "s"
    job = None
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the first screen
            if select.select([fd], [], [], 0.1)[0]:
                os.read(fd, 1 << 16)
        os.write(fd, b"s")  # train
        assert until(lambda: runs.is_dir() and any(runs.iterdir()), 120), "no run began"
        (run_dir,) = runs.iterdir()
        assert until(lambda: len(train_steps(run_dir)) >= 3, 120), "no step"
        job = read_heartbeat(run_dir)
        assert job is not None and job.pid != pid
        os.kill(pid, signal.SIGKILL)  # the app dies without a word
        os.waitpid(pid, 0)
        before = train_steps(run_dir)[-1]
        assert until(lambda: train_steps(run_dir)[-1] > before + 20, 60), \
            "the job stopped with the app"

        # Reopening the session attaches to its running job at once.
        monkeypatch.setenv("LLMLAB_HEARTBEAT_S", "0.5")

        async def reopen() -> None:
            app = LlmlabApp(load_session(path), path)
            async with app.run_test(size=SIZE) as pilot:
                await wait_for(pilot, lambda: app.training.busy, 30, "the attach")
                assert app.training.run_dir == str(run_dir)
                logged = len(train_steps(run_dir))
                pane = app.train_pane
                await wait_for(pilot, lambda: len(pane.history.train_loss) >= logged, 30,
                               "every step so far in the plot")
                assert pane.history.train_loss.steps[0] == 1  # from the run's first step
                plotted = pane.plot_data()["loss"].series[0].steps
                assert len(plotted) >= logged, "the plot lacks steps logged before the attach"
                await pilot.press("x")  # stop, from the app
                await wait_for(pilot, lambda: app.training.state == "stopped", 60, "the stop")
                await app.action_quit()  # (no question: the job is over)

        asyncio.run(reopen())
        assert until(lambda: not alive(job.pid), 30), "the job outlived its stop"
        assert read_run_info(run_dir)["status"] == "stopped" and has_checkpoint(run_dir)
    finally:
        for p in (pid, job.pid if job else 0):
            if p and alive(p):
                os.kill(p, signal.SIGKILL)
        os.close(fd)


def test_a_headless_training_is_steered_from_the_app(tmp_path: Path, monkeypatch) -> None:
    path = _session_file(tmp_path)
    monkeypatch.setenv("LLMLAB_HEARTBEAT_S", "0.5")
    job = subprocess.Popen([sys.executable, "-m", "llmlab", "train", str(path)],
                           cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    runs = tmp_path / "runs" / "s"
    try:
        assert until(lambda: runs.is_dir() and any(
            len(train_steps(r)) >= 2 for r in runs.iterdir()), 120), "no step"
        (run_dir,) = runs.iterdir()

        async def steer() -> None:
            app = LlmlabApp(load_session(path), path)
            async with app.run_test(size=SIZE) as pilot:
                await wait_for(pilot, lambda: app.training.state == "running", 30,
                               "the attach")
                await pilot.press("space")  # pause
                await wait_for(pilot, lambda: app.training.state == "paused", 30, "paused")
                (pause,) = [r for r in read_metrics(run_dir) if r.get("op") == "pause"]
                paused_at = pause["step"]  # (the step the job stood still after)
                lr = app.live["optim.lr"]
                await pilot.press("right_square_bracket")  # lr x2
                await wait_for(pilot, lambda: any(
                    r.get("type") == "hparam" for r in read_metrics(run_dir)), 30,
                    "the lr change in metrics.jsonl")
                (change,) = [r for r in read_metrics(run_dir) if r.get("type") == "hparam"]
                assert change["name"] == "optim.lr" and change["new"] == lr * 2
                assert change["step"] == paused_at + 1  # from the next step on
                assert train_steps(run_dir)[-1] <= paused_at  # still paused
                await wait_for(pilot, lambda: app.train_pane.history.markers, 10,
                               "the change shown in the plot")
                await pilot.press("space")  # resume
                await wait_for(pilot, lambda: train_steps(run_dir)[-1] > paused_at + 10,
                               30, "steps after resume")
                after = [r for r in read_metrics(run_dir)
                         if r.get("type") == "train" and r["step"] > paused_at]
                assert after and all(abs(r["lr"]) > 0 for r in after)
                await pilot.press("x")  # stop
                await wait_for(pilot, lambda: app.training.state == "stopped", 60, "the stop")
                await app.action_quit()

        asyncio.run(steer())
        assert job.wait(timeout=60) == 130  # (stopped: llmlab train's exit status)
        assert read_run_info(run_dir)["status"] == "stopped"
        assert has_checkpoint(run_dir), "stop left nothing to resume from"
        acks = [r for r in read_metrics(run_dir) if r.get("type") == "control"]
        assert [a["op"] for a in acks] == ["pause", "set", "resume", "stop"]
        assert all(a["ok"] for a in acks), json.dumps(acks)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()


def test_a_killed_job_shows_lost_in_the_runs_pane_and_one_key_resumes_it(
        tmp_path: Path, monkeypatch) -> None:
    path = _session_file(tmp_path)
    monkeypatch.setenv("LLMLAB_HEARTBEAT_S", "0.5")
    job = subprocess.Popen([sys.executable, "-m", "llmlab", "train", str(path)],
                           cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    runs = tmp_path / "runs" / "s"
    resumed: list[int] = []
    try:
        assert until(lambda: runs.is_dir() and any(has_checkpoint(r) for r in runs.iterdir()),
                      120), "no checkpoint"
        (run_dir,) = runs.iterdir()

        async def scenario() -> None:
            app = LlmlabApp(load_session(path), path)
            async with app.run_test(size=SIZE) as pilot:
                await wait_for(pilot, lambda: app.training.state == "running", 30,
                               "the attach")
                await pilot.press("r")  # the Runs pane
                pane = app.query_one("#runs")
                await wait_for(pilot, lambda: [r.status for r in pane.runs] == ["running"],
                               30, "the run listed as running")
                job.send_signal(signal.SIGKILL)
                job.wait()
                await wait_for(pilot, lambda: [r.status for r in pane.runs] == ["lost"], 30,
                               "the run shown as lost")
                await wait_for(pilot, lambda: app.training.state == "lost", 30,
                               "the Train pane's run lost")
                steps = train_steps(run_dir)[-1]
                pane.table.focus()
                await pilot.press("u")  # resume it
                await wait_for(pilot, lambda: app.training.state == "running", 60,
                               "the resumed job training")
                resumed.append(app.training.launched.pid)
                await wait_for(pilot, lambda: train_steps(run_dir)[-1] > steps, 60,
                               "steps after the resume")
                await pilot.press("t", "x")  # the Train pane, stop
                await wait_for(pilot, lambda: app.training.state == "stopped", 60, "the stop")
                await app.action_quit()

        asyncio.run(scenario())
        assert resumed and until(lambda: not alive(resumed[0]), 30)
        assert read_run_info(run_dir)["status"] == "stopped"
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
        for pid in resumed:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_job_refused_at_its_start_says_why_in_one_line_and_leaves_no_folder(
        tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 64)
    session = small_session(tmp_path, name="s", runs_dir="runs")
    session.data.corpus = str(blob)

    async def scenario() -> None:
        app = LlmlabApp(session, None)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            await wait_for(pilot, lambda: app.training.state == "failed", 60,
                           "the job's refusal")
            # (its line is read from the run folder after the state: on a loaded machine it
            # came a moment later)
            await wait_for(pilot, lambda: any("blob.bin" in n for n in notifications(app)), 30,
                           "the refusal's line")
            shown = [n for n in notifications(app) if "blob.bin" in n]
            assert shown and "\n" not in shown[0] and "Traceback" not in shown[0], shown
            assert not app.training.busy
            runs = tmp_path / "runs" / "s"
            await wait_for(pilot, lambda: not runs.exists() or not any(runs.iterdir()), 30,
                           "the unstarted run's folder removed")

    asyncio.run(scenario())


def test_the_palette_follows_a_run_picked_by_its_folder(tmp_path: Path) -> None:
    run_dir = train_tiny_run(tmp_path, steps=20)

    async def scenario() -> None:
        app = LlmlabApp(small_session(tmp_path / "other"), None)
        async with app.run_test(size=SIZE) as pilot:
            app.action_follow_run()
            await wait_for(pilot, lambda: isinstance(app.screen, PathPickerScreen), 10,
                           "the folder picker")
            await pilot.press("ctrl+a", "ctrl+k")
            await paste(pilot, str(tmp_path))  # not a run: refused, the picker stays
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, PathPickerScreen)
            await pilot.press("ctrl+a", "ctrl+k")
            await paste(pilot, str(run_dir))
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.training.run_dir == str(run_dir), 10,
                           "the run followed")
            await wait_for(pilot, lambda: len(app.train_pane.history.train_loss)
                           == len(train_steps(run_dir)), 30, "its curves")

    asyncio.run(scenario())


def test_llmlab_attach_opens_the_app_on_a_run_with_its_curves(tmp_path: Path) -> None:
    run_dir = train_tiny_run(tmp_path, steps=30)
    steps = train_steps(run_dir)

    async def scenario() -> None:
        from core.runs import restart_session

        app = LlmlabApp(restart_session(run_dir), None, attach=run_dir)
        async with app.run_test(size=SIZE) as pilot:
            pane = app.train_pane
            await wait_for(pilot, lambda: len(pane.history.train_loss) == len(steps), 30,
                           "the run's curves")
            assert pane.history.train_loss.steps == [float(s) for s in steps]
            assert app.training.state == "finished" and not app.training.busy
            assert app.session_path is None  # (the run's frozen session is never saved over)
            await asyncio.wait_for(app.model_pane.settled.wait(), 30)  # (before leaving)

    asyncio.run(scenario())


def test_a_long_run_is_attached_as_its_history(tmp_path: Path, monkeypatch) -> None:
    """A run longer than the replay limit comes to the Train pane as its history at once (the
    curves so far and its latest log lines), not as one event per record."""
    monkeypatch.setattr("tui.job_client.REPLAY_LIMIT", 5)
    run_dir = train_tiny_run(tmp_path, steps=30)
    steps = train_steps(run_dir)

    async def scenario() -> None:
        from core.runs import restart_session

        app = LlmlabApp(restart_session(run_dir), None, attach=run_dir)
        async with app.run_test(size=SIZE) as pilot:
            pane = app.train_pane
            await wait_for(pilot, lambda: len(pane.history.train_loss) == len(steps), 30,
                           "the run's curves")
            assert pane.history.train_loss.steps == [float(s) for s in steps]
            assert any("following" in t for t in pane.event_log.texts)
            assert any("val loss" in t for t in pane.event_log.texts)  # its log lines
            assert pane.history.val_loss.steps, "the evaluations are in the history"
            await asyncio.wait_for(app.model_pane.settled.wait(), 30)  # (before leaving)

    asyncio.run(scenario())
