"""The Runs pane groups the runs of a cross-validation (core/folds.py): one row for the group
with its folds' mean val loss and spread, its folds indented under it; enter on the group
overlays every fold."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

from helpers.tui import app_at, notifications, screen_text, small_session, sync, wait_for

from core.folds import fold_info, run_fold, summarize_folds
from core.run_claim import read_heartbeat
from core.run_writer import RunWriter
from core.runs import read_metrics, read_run_info
from tui.app import LlmlabApp
from tui.panes.runs import RunsPane
from tui.widgets.runs_table import RunsTable


def fold_run(root: Path, run_id: str, fold: int, best: float) -> Path:
    """A finished fold run of a 3-fold group named after its fold 0 (no torch, no clock)."""
    run_dir = root / "tiny" / run_id
    run_dir.mkdir(parents=True)
    writer = RunWriter(run_dir)
    writer.write_session(small_session(root.parent))
    for step in (10, 20):
        writer.log({"type": "train", "step": step, "loss": best + 0.5 / step})
        writer.log({"type": "eval", "step": step, "split": "val", "val_loss": best + 1 / step})
    writer.update_info(session="tiny", arch="gpt", params=13952, max_steps=20, step=20,
                       created=f"2025-01-02T09:00:0{fold}", status="finished",
                       best_val_loss=best + 0.05, **fold_info("20250102-090000", fold, 3))
    writer.close()
    return run_dir


def rows(app) -> list[list[str]]:
    table = app.query_one(RunsTable)
    return [[str(c).strip() for c in table.get_row_at(i)] for i in range(table.row_count)]


@sync
async def test_the_runs_pane_shows_a_fold_group_with_mean_and_spread(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    folds = [fold_run(root, f"20250102-09000{i}", i, best)
             for i, best in enumerate((1.0, 1.2, 1.1))]  # best val losses 1.05 1.25 1.15
    async with app_at(tmp_path, size=(100, 30)) as (app, pilot):
        pane = app.query_one(RunsPane)
        await pilot.press("r")
        await wait_for(pilot, lambda: pane.scans > 0, 20, "the runs folder read")
        shown = rows(app)
        assert len(shown) == 4  # the group, then its three folds
        assert shown[0][1] == "tiny/20250102-090000: 3 folds ±0.100"
        assert shown[0][5] == "3/3 fold" and shown[0][6] == "1.150"  # mean of the folds
        assert shown[0][8] == "finished"
        assert [r[1] for r in shown[1:]] == [f"fold {i} tiny/{d.name}"
                                              for i, d in enumerate(folds)]
        assert [r[6] for r in shown[1:]] == ["1.050", "1.250", "1.150"]
        await pilot.pause()
        text = screen_text(app)
        assert "3 folds ±0.100" in text and "fold 1 tiny/20250102-090001" in text
        # the cursor on the group: its val losses, mean and std in the details panel
        await wait_for(pilot, lambda: "val loss over 3 folds: 1.0500 1.2500 1.1500, mean "
                       "1.1500 ± 0.1000 (std)" in screen_text(app), 10, "the group's line")
        await pilot.press("enter")  # every fold on the plot
        await wait_for(pilot, lambda: len(pane.plot_data().series) == 6, 20, "three folds")
        assert set(pane.selected) == {str(d) for d in folds}
        await pilot.press("o")  # a group is no run to open: say what to do
        await wait_for(pilot, lambda: any("pick one of its folds" in n
                                          for n in notifications(app)), 5, "the notice")
        await pilot.press("u")  # (every fold finished: nothing to continue)
        await wait_for(pilot, lambda: any(
            "no fold to continue (fold 0 finished; fold 1 finished; fold 2 finished)" in n
            for n in notifications(app)), 10, "the notice")
        await pilot.press("enter")  # all off again
        await wait_for(pilot, lambda: not pane.selected, 5, "the overlay emptied")


@sync
async def test_start_with_folds_on_the_in_process_engine_says_how_to_run_them(
        tmp_path: Path) -> None:
    """(The in-process engine of the tests trains one run at a time; the app itself starts
    trainings as jobs: the next test.)"""
    async with app_at(tmp_path, jobs=False) as (app, pilot):
        app.session.data.folds = 3
        await pilot.press("s")
        await wait_for(pilot, lambda: any("cross-validation trains 3 runs" in n
                                          for n in notifications(app)), 5, "the notice")
        assert not app.training.busy and not (tmp_path / "runs").exists()


def test_start_with_folds_trains_them_as_jobs_followed_and_grouped(tmp_path: Path) -> None:
    """data.folds = 2 and the start key: both folds start at once as jobs (one group), the
    Train pane follows fold 1 to its end, and the Runs pane shows the group's mean."""
    session = small_session(tmp_path, name="f", runs_dir="runs", folds=2, max_steps=30,
                            eval_interval=10, log_interval=5)
    pids: list[int] = []

    async def scenario() -> None:
        app = LlmlabApp(session, None)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("s")
            await pilot.press("s")  # (a second press while they start starts nothing more)
            await wait_for(pilot, lambda: any("2 folds training as jobs" in n and
                                              "the Train pane follows fold 1" in n
                                              for n in notifications(app)), 120, "the folds")
            runs = sorted((tmp_path / "runs" / "f").iterdir())
            assert len(runs) == 2
            assert app.training.run_dir == str(runs[0])
            await wait_for(pilot, lambda: all(read_heartbeat(r) for r in runs), 120,
                           "both jobs begun")
            pids.extend(read_heartbeat(r).pid for r in runs)
            await wait_for(pilot, lambda: all(read_run_info(r).get("status") == "finished"
                                              for r in runs), 300, "both folds finished")
            assert [run_fold(read_run_info(r)) for r in runs] == [
                (runs[0].name, 0, 2), (runs[0].name, 1, 2)]
            await wait_for(pilot, lambda: app.training.state == "finished", 30,
                           "fold 1 followed to its end")
            logged = [float(r["step"]) for r in read_metrics(runs[0]) if r["type"] == "train"]
            assert app.train_pane.history.train_loss.steps == logged and logged[-1] == 30
            await pilot.press("r")
            summary = summarize_folds(runs)
            await wait_for(pilot, lambda: f"2 folds ±{summary.std:.3f}" in screen_text(app),
                           20, "the group in the Runs pane")

    try:
        asyncio.run(scenario())
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)



@sync
async def test_start_with_folds_too_small_for_a_window_says_so_and_starts_nothing(
        tmp_path: Path) -> None:
    (tmp_path / "small.txt").write_text("abcdefghij" * 30)  # 300 tokens
    async with app_at(tmp_path) as (app, pilot):
        app.session.data.corpus = str(tmp_path / "small.txt")
        app.session.data.split = [0.9, 0.1, 0.0]
        app.session.data.folds = 30
        await pilot.press("s")
        said = await wait_for(pilot, lambda: [n for n in notifications(app)
                                              if n.startswith("data.folds:")], 30, "the line")
        assert said == ["data.folds: fold 0's val block has 10 tokens, fewer than "
                        "model.context + 1 (33); use fewer folds or a larger corpus"]
        await pilot.pause(0.5)
        assert not app.training.busy and not (tmp_path / "runs").exists()


def test_resume_on_a_fold_group_continues_its_stopped_folds_as_jobs(tmp_path: Path) -> None:
    """Two folds trained as jobs are stopped mid-way; `u` on their group in the Runs pane
    continues both, as jobs, from their checkpoints (the same run folders, still one group),
    and the Train pane follows fold 0; a group with nothing to continue says why."""
    import re
    import time

    from helpers.cli import llmlab, ok
    from helpers.jobs import JOB_ENV, alive, train_steps, until

    from core.control import make_request, send_control
    from core.runs import has_checkpoint
    from core.session import load_session, save_session

    path = tmp_path / "f.toml"
    save_session(small_session(tmp_path, name="f", runs_dir="runs", folds=2, eval_interval=10,
                               checkpoint_interval=5), path)
    out = ok(llmlab(tmp_path, "train", "f.toml", "--detach", **JOB_ENV))
    runs = [Path(p) for p in re.findall(r"run folder (\S+)", out)]
    pids: list[int] = [int(p) for p in re.findall(r"pid (\d+)", out)]

    def stop_all() -> None:
        for run in runs:
            send_control(run, make_request("stop"))
        assert until(lambda: all(read_run_info(r).get("status") == "stopped" for r in runs),
                     120), [read_run_info(r).get("status") for r in runs]

    async def scenario() -> None:
        app = LlmlabApp(load_session(path), path)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = app.query_one(RunsPane)
            await pilot.press("r")
            await wait_for(pilot, lambda: pane.scans > 0 and rows(app), 20, "the runs")
            assert ": 2 folds" in rows(app)[0][1]  # (the group row, under the cursor)
            await pilot.press("u")
            await wait_for(pilot, lambda: any("continuing 2 folds as jobs" in n
                                              for n in notifications(app)), 60, "the folds")
            await wait_for(pilot, lambda: all(read_run_info(r).get("status") == "running"
                                              and train_steps(r)[-1] > stopped[r]
                                              for r in runs), 120, "both folds training on")
            pids.extend(read_heartbeat(r).pid for r in runs)
            assert app.training.run_dir == str(runs[0])
            await wait_for(pilot, lambda: rows(app)[1][-1] == "running", 20,
                           "the Runs pane showing fold 0 running again")
            stop_all()
            await pilot.press("ctrl+r")  # (read the folder again: both stopped)
            await wait_for(pilot, lambda: all("stopped" in r[-1] for r in rows(app)[1:]), 20,
                           "the folds stopped")

    try:
        assert until(lambda: all(has_checkpoint(r) for r in runs), 120), "no checkpoints"
        stop_all()
        assert until(lambda: not any(alive(p) for p in pids), 60)
        stopped = {r: train_steps(r)[-1] for r in runs}
        asyncio.run(scenario())
        assert until(lambda: not any(alive(p) for p in pids), 60)
        assert [run_fold(read_run_info(r)) for r in runs] == [
            (runs[0].name, 0, 2), (runs[0].name, 1, 2)]
        for run in runs:  # (every step once: the resumed job went on from the checkpoint)
            steps = [r["step"] for r in read_metrics(run) if r["type"] == "train"]
            assert steps == sorted(set(steps)) and steps[-1] > stopped[run]
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
