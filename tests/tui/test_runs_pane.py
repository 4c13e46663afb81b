"""The Runs pane driven by keys: the table of runs, overlaid curves, open, resume, export.

Two real runs (tiny GPTs, 60 steps, two sessions and learning rates) are trained once for the
module; the snapshot uses synthetic run folders with fixed ids, dates and metrics.
"""

from __future__ import annotations

import asyncio
import csv
import shutil
from pathlib import Path

import pytest
from helpers.tui import (
    _palette_has,
    app_at,
    notifications,
    paste,
    screen_text,
    small_session,
    sync,
    wait_for,
    wait_for_screen,
)

from core import messages as msg
from core.run_writer import RunWriter
from core.runs import read_metrics, read_run_info
from tui.app import LlmlabApp
from tui.panes.runs import RunsPane
from tui.run_curves import RUN_COLORS
from tui.screens.confirm import ConfirmScreen
from tui.screens.path_picker import PathPickerScreen
from tui.screens.run_label import RunLabelScreen
from tui.smoothing import SMOOTHING_WEIGHT, debiased_ema
from tui.widgets.runs_table import RunsTable

SIZE = (80, 24)


def run(coro) -> None:
    asyncio.run(coro)



def _train(base: Path, name: str, lr: float) -> Path:
    """A tiny GPT trained in-process for 60 steps; its run folder."""
    from core.engine import Engine

    s = small_session(base, max_steps=60, eval_interval=30, checkpoint_interval=0)
    s.name = name
    s.optim.lr = lr
    events: list[msg.Event] = []
    state = Engine(s, events.append).train()
    assert state == "finished", [e.message for e in events if isinstance(e, msg.Error)]
    (started,) = [e for e in events if isinstance(e, msg.RunStarted)]
    return Path(started.run_dir)


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """(base folder, [the "tiny" session's run, the "other" session's run]); the app's
    session is "tiny", with its runs_dir holding both."""
    base = tmp_path_factory.mktemp("runs-pane")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMLAB_CACHE_DIR", str(base / "cache"))
        other = _train(base, "other", 3e-3)
        tiny = _train(base, "tiny", 1e-3)
    return base, [tiny, other]


def synthetic_run(root: Path, session: str, run_id: str, created: str, steps: int,
                  decay: float, status: str = "finished") -> Path:
    """A run folder as a training writes it, with fixed metrics (no torch, no clock)."""
    run_dir = root / session / run_id
    run_dir.mkdir(parents=True)
    writer = RunWriter(run_dir)
    frozen = small_session(root.parent)
    frozen.name = session
    writer.write_session(frozen)
    best = None
    for step in range(1, steps + 1):
        loss = 1.0 + 2.0 * decay**step + 0.05 * ((step * 7919) % 11) / 11
        writer.log({"type": "train", "step": step, "loss": loss,
                    "tokens_per_s": 1000.0 * steps})
        if step % 20 == 0:
            writer.log({"type": "eval", "step": step, "split": "val", "val_loss": loss + 0.1})
            best = loss + 0.1 if best is None else min(best, loss + 0.1)
    writer.update_info(session=session, arch="gpt", params=13952, max_steps=steps,
                       created=created, status=status, step=steps, best_val_loss=best,
                       best_step=steps)
    writer.close()
    return run_dir


def synthetic_runs(base: Path) -> list[Path]:
    root = base / "runs"
    return [synthetic_run(root, "tiny", "20250102-090000", "2025-01-02T09:00:00", 80, 0.9),
            synthetic_run(root, "tiny", "20250101-120000", "2025-01-01T12:00:00", 100, 0.96),
            synthetic_run(root, "other", "20250103-100000", "2025-01-03T10:00:00", 120, 0.98,
                          "stopped")]


async def show_runs(pilot, app: LlmlabApp) -> RunsPane:
    """Press r (the Runs pane) and wait for the runs folder to be read."""
    pane = app.query_one(RunsPane)
    before = pane.scans
    await pilot.press("r")
    await wait_for(pilot, lambda: pane.scans > before, 20, "the runs folder read")
    return pane


async def overlay_two(pilot, app: LlmlabApp) -> RunsPane:
    """The Runs pane with its first two runs overlaid (enter, down, enter), curves read."""
    pane = await show_runs(pilot, app)
    await pilot.press("enter", "down", "enter")
    await wait_for(pilot, lambda: len(pane.plot_data().series) == 4, 20, "the curves")
    return pane


def table_rows(app: LlmlabApp) -> list[list[str]]:
    table = app.query_one(RunsTable)
    return [[str(cell).strip() for cell in table.get_row_at(i)] for i in range(table.row_count)]


# --------------------------------------------------------------------------- the table


@sync
async def test_table_lists_runs_with_steps_and_best_val_loss(real_runs) -> None:
    base, (tiny, other) = real_runs

    async with app_at(base) as (app, pilot):
        await show_runs(pilot, app)
        rows = table_rows(app)
        assert [row[1] for row in rows] == [f"tiny/{tiny.name}", f"other/{other.name}"]
        for row, run_dir in zip(rows, (tiny, other), strict=True):
            info = read_run_info(run_dir)
            assert row[5] == "60/60"
            assert row[6] == f"{info['best_val_loss']:.3f}"
            assert row[3] == "gpt" and row[8] == "finished"
        await wait_for_screen(pilot, "2 runs  ⏎ plotted 0")
        text = screen_text(app)
        assert f"tiny/{tiny.name}" in text and "2 runs  ⏎ plotted 0" in text
        assert isinstance(app.focused, RunsTable)


@sync
async def test_refresh_key_finds_a_new_run(tmp_path: Path) -> None:
    synthetic_runs(tmp_path)

    async with app_at(tmp_path) as (app, pilot):
        pane = await show_runs(pilot, app)
        assert len(table_rows(app)) == 3
        synthetic_run(tmp_path / "runs", "tiny", "20250104-080000", "2025-01-04T08:00:00",
                      40, 0.9)
        before = pane.scans
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: pane.scans > before, 20, "the refresh")
        rows = table_rows(app)
        assert rows[0][1] == "tiny/20250104-080000" and rows[0][5] == "40/40"
        # The session's own runs come first, the other session's last.
        assert [r[1].split("/")[0] for r in rows] == ["tiny", "tiny", "tiny", "other"]


@sync
async def test_no_runs_says_how_to_make_one(tmp_path: Path) -> None:
    async with app_at(tmp_path) as (app, pilot):
        await show_runs(pilot, app)
        await pilot.pause()
        await wait_for_screen(pilot, "Press s to train the session")
        text = " ".join(screen_text(app).split())
        assert "No runs yet" in text and "Press s to train the session" in text
        await pilot.press("o")
        await wait_for(pilot, lambda: any("no run here yet" in n
                                          for n in notifications(app)), 5, "the notice")


# --------------------------------------------------------------------------- the overlay


@sync
async def test_select_two_runs_overlays_their_curves_smoothing_and_log(real_runs) -> None:
    base, (tiny, other) = real_runs

    async with app_at(base) as (app, pilot):
        pane = await show_runs(pilot, app)
        await pilot.press("enter", "down", "enter")
        await wait_for(pilot, lambda: len(pane.plot_data().series) == 4, 20,
                       "two runs' curves")
        data = pane.plot_data()
        by_label = {s.label: s for s in data.series}
        assert set(by_label) == {f"tiny/{tiny.name} train", f"tiny/{tiny.name} val",
                                 f"other/{other.name} train", f"other/{other.name} val"}
        # One colour per run, train and val in it.
        assert by_label[f"tiny/{tiny.name} train"].color == RUN_COLORS[0]
        assert by_label[f"tiny/{tiny.name} val"].color == RUN_COLORS[0]
        assert by_label[f"other/{other.name} train"].color == RUN_COLORS[1]
        # The curves are the runs' metrics: train loss (smoothed), val loss.
        train = [r for r in read_metrics(tiny) if r["type"] == "train"]
        raw = [r["loss"] for r in train]
        tiny_train = by_label[f"tiny/{tiny.name} train"]
        assert tiny_train.steps == [r["step"] for r in train]
        assert tiny_train.values == pytest.approx(debiased_ema(raw, SMOOTHING_WEIGHT))
        vals = [r["val_loss"] for r in read_metrics(tiny) if r["type"] == "eval"]
        assert by_label[f"tiny/{tiny.name} val"].values == pytest.approx(vals)
        await wait_for_screen(pilot, "plotted 2")
        # The marks: a coloured dot in the first column of both rows.
        assert [row[0] for row in table_rows(app)] == ["●", "●"]

        await pilot.press("a")  # smoothing off: the raw train loss
        assert not pane.smoothing
        off = {s.label: s for s in pane.plot_data().series}
        assert off[f"tiny/{tiny.name} train"].values == pytest.approx(raw)
        assert off[f"tiny/{tiny.name} train"].values != tiny_train.values
        await wait_for_screen(pilot, "a smooth off")
        await pilot.press("l")
        assert pane.plot_data().log_y and pane.plot.data.log_y

        await pilot.press("enter")  # the cursor's run (other) off the plot
        labels = [s.label for s in pane.plot_data().series]
        assert labels == [f"tiny/{tiny.name} train", f"tiny/{tiny.name} val"]
        assert [row[0] for row in table_rows(app)] == ["●", ""]


@sync
async def test_palette_reaches_the_runs_commands(tmp_path: Path) -> None:
    synthetic_runs(tmp_path)

    async with app_at(tmp_path) as (app, pilot):
        await pilot.press("ctrl+p")
        await paste(pilot, "Runs: toggle log scale")
        await wait_for(pilot, lambda: _palette_has(app, "Runs: toggle log scale"), 10,
                       "the palette entry")
        await pilot.press("enter")
        pane = app.query_one(RunsPane)
        await wait_for(pilot, lambda: pane.log_scale, 10, "the log scale")
        assert app.current_pane == "runs"
        titles = [c.title for c in pane.palette_commands()]
        assert titles == ["Runs: overlay/select", "Runs: open for pruning and generation",
                          "Runs: resume training", "Runs: export CSV", "Runs: refresh",
                          "Runs: toggle smoothing", "Runs: toggle log scale",
                          "Runs: x-axis by step / tokens / wall time",
                          "Runs: plot loss / gradient norm", "Runs: name and notes",
                          "Runs: hyperparameter diff"]


# --------------------------------------------------------------------------- export


async def export_to(pilot, app: LlmlabApp, path: Path) -> None:
    await pilot.press("e")
    await wait_for(pilot, lambda: isinstance(app.screen, PathPickerScreen), 10,
                   "the export dialog")
    await pilot.press("ctrl+a", "ctrl+k")
    await paste(pilot, str(path))
    await pilot.press("enter")


@sync
async def test_export_csv_of_two_runs(real_runs, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    base, (tiny, other) = real_runs
    monkeypatch.chdir(tmp_path)  # the dialog starts in the working folder
    target = tmp_path / "out" / "both.csv"
    target.parent.mkdir()

    async with app_at(base) as (app, pilot):
        pane = await show_runs(pilot, app)
        await pilot.press("enter", "down", "enter")
        await export_to(pilot, app, target)
        await wait_for(pilot, lambda: pane.exported is not None, 20, "the export")
        with open(target, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        total = len(read_metrics(tiny)) + len(read_metrics(other))
        assert len(rows) == total
        assert {r["run"] for r in rows} == {f"tiny/{tiny.name}", f"other/{other.name}"}
        assert f"wrote {total} rows to {target}" in notifications(app)

        # Again to the same file: asked first; "n" keeps the file as it is.
        pane.exported = None
        target.write_text("keep me", encoding="utf-8")
        await export_to(pilot, app, target)
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10,
                       "the replace question")
        await pilot.press("n")
        await pilot.pause()
        assert target.read_text(encoding="utf-8") == "keep me"
        await export_to(pilot, app, target)
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10,
                       "the replace question")
        await pilot.press("y")
        await wait_for(pilot, lambda: pane.exported is not None, 20, "the export")
        assert target.read_text(encoding="utf-8").startswith("run,")


@sync
async def test_export_without_selection_takes_the_cursor_run_and_errors_are_one_line(
        real_runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base, (tiny, other) = real_runs
    monkeypatch.chdir(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")

    async with app_at(base) as (app, pilot):
        pane = await show_runs(pilot, app)
        await pilot.press("down", "e")
        await wait_for(pilot, lambda: isinstance(app.screen, PathPickerScreen), 10,
                       "the export dialog")
        # The dialog offers a file named after the run, in the working folder.
        offered = app.screen.query_one("#path-input").value
        assert offered == str(tmp_path / f"other-{other.name}.csv")
        await pilot.press("escape")
        await export_to(pilot, app, tmp_path / "one")  # .csv is added
        await wait_for(pilot, lambda: pane.exported is not None, 20, "the export")
        with open(tmp_path / "one.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert {r["run"] for r in rows} == {f"other/{other.name}"}
        assert len(rows) == len(read_metrics(other))

        await export_to(pilot, app, blocker / "x.csv")  # a folder that cannot be
        await wait_for(pilot, lambda: any("could not export" in n
                                          for n in notifications(app)), 20, "the error")
        (error,) = [n for n in notifications(app) if "could not export" in n]
        assert "\n" not in error and "Traceback" not in error


# --------------------------------------------------------------------------- open, resume


@sync
async def test_open_loads_the_run_for_prune_and_generate(real_runs, thread_factory) -> None:
    base, (tiny, other) = real_runs

    async with app_at(base, engine_factory=thread_factory) as (app, pilot):
        pane = await show_runs(pilot, app)
        await pilot.press("down", "o")
        await wait_for(pilot, lambda: app.model_source == str(other), 60, "the load")
        assert isinstance(app.client.engine.sent[-1], msg.LoadRun)
        await wait_for(pilot, lambda: pane.loaded == str(other), 10, "the pane's word")
        await wait_for_screen(pilot, f"loaded other/{other.name}")
        assert any("Prune (p) and Generate (g) panes use it" in n
                   for n in notifications(app))


@sync
async def test_resume_starts_the_engine_from_the_run(real_runs, tmp_path: Path, thread_factory,
                                               thread_engines) -> None:
    base, (tiny, _) = real_runs
    copy = tmp_path / "runs" / "tiny" / tiny.name  # resuming writes to the run: a copy
    shutil.copytree(tiny, copy)
    frozen = copy / "session.toml"  # with steps left (a finished run is not trained again)
    assert "max_steps = 60" in frozen.read_text()
    frozen.write_text(frozen.read_text().replace("max_steps = 60", "max_steps = 80"))

    async with app_at(tmp_path, engine_factory=thread_factory) as (app, pilot):
        pane = await show_runs(pilot, app)
        scans = pane.scans
        await pilot.press("u")
        await wait_for(pilot, lambda: thread_engines and thread_engines[-1].sent, 20,
                       "a command to the engine")
        start = thread_engines[-1].sent[0]
        assert start == msg.Start(resume=str(copy))
        if app.training.busy:
            await pilot.press("x")
        await wait_for(pilot, lambda: app.training.state in ("finished", "stopped"), 60,
                       "the run to end")
        # A run that ended is read again when the pane shows (hidden, it waits for that).
        assert not pane.display and pane.scans >= scans
        hidden = pane.scans
        await show_runs(pilot, app)
        await wait_for(pilot, lambda: pane.scans > hidden, 20, "the refresh")
        await app.client.shutdown()


@sync
async def test_resuming_a_finished_run_says_so_and_leaves_it_as_it_is(real_runs, tmp_path: Path,
                                                              thread_factory) -> None:
    base, (tiny, _) = real_runs
    copy = tmp_path / "runs" / "tiny" / tiny.name
    shutil.copytree(tiny, copy)
    before = {p: p.stat().st_mtime_ns for p in copy.rglob("*")}

    async with app_at(tmp_path, engine_factory=thread_factory) as (app, pilot):
        await show_runs(pilot, app)
        await pilot.press("u")
        await wait_for(pilot, lambda: any("already finished (step 60 of 60)" in n
                                          for n in notifications(app)), 60,
                       "the already-finished line")
        await app.client.shutdown()
    assert {p: p.stat().st_mtime_ns for p in copy.rglob("*")} == before


def test_run_json_texts_and_notifications_show_no_control_codes(tmp_path: Path) -> None:
    """A run.json someone else wrote: its status and model, and a notification quoting a
    name, reach the screen with ESC shown as ␛, never as an escape."""
    run_dir = synthetic_run(tmp_path / "runs", "tiny", "20250101-120000", "2025-01-01T12:00:00",
                            20, 0.9, status="stopped\x1b]0;owned\x07")
    info = read_run_info(run_dir)
    RunWriter(run_dir).update_info(arch=f"gpt\x1b[2J{info.get('arch', '')}")
    app = LlmlabApp(small_session(tmp_path), None)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            pane = await show_runs(pilot, app)
            await wait_for(pilot, lambda: pane.runs, 20, "the run listed")
            app.notify("tiny\x1b]52;c;aGk=\x07 could not be read")
            await pilot.pause()
            text = screen_text(app) + "".join(notifications(app))
            assert "\x1b" not in text and "\x07" not in text
            assert "ed␇" in text, text  # (the status cell, cut in its middle)
            assert "tiny␛]52;c;aGk=␇" in "".join(notifications(app))

    run(scenario())


# --------------------------------------------------------------------------- snapshot


def test_runs_pane_snapshot(snap_compare, tmp_path: Path) -> None:
    synthetic_runs(tmp_path)
    app = LlmlabApp(small_session(tmp_path), None)

    async def run_before(pilot) -> None:
        pane = await show_runs(pilot, app)
        await pilot.press("enter", "down", "enter")
        await wait_for(pilot, lambda: len(pane.plot_data().series) == 4, 20, "the curves")
        pane.redraw()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


@sync
async def test_with_nothing_overlaid_the_plot_shows_the_cursor_run(real_runs) -> None:
    base, (tiny, other) = real_runs

    async with app_at(base) as (app, pilot):
        pane = await show_runs(pilot, app)
        await wait_for(pilot, lambda: len(pane.plot_data().series) == 2, 20,
                       "the cursor run's curves")
        assert {s.label for s in pane.plot_data().series} == {
            f"tiny/{tiny.name} train", f"tiny/{tiny.name} val"}
        await pilot.press("down")
        await wait_for(pilot, lambda: {s.label for s in pane.plot_data().series} == {
            f"other/{other.name} train", f"other/{other.name} val"}, 20, "the next run's")
        await pilot.press("enter", "up")  # overlaid: the plot keeps what is overlaid
        await wait_for(pilot, lambda: pane.plot.data == pane.plot_data(), 5, "redrawn")
        assert {s.label for s in pane.plot_data().series} == {
            f"other/{other.name} train", f"other/{other.name} val"}


def test_a_run_lost_before_its_first_checkpoint_says_so_and_starts_again(
        tmp_path: Path, fake_factory, fake_engines) -> None:
    """A training killed before its first checkpoint left its run "running" forever, and
    the resume key said only "no complete checkpoint"."""
    import json
    import subprocess
    import sys


    lost = synthetic_run(tmp_path / "runs", "tiny", "20250101-120000", "2025-01-01T12:00:00",
                         40, 0.9, status="running")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    info = read_run_info(lost)
    info["pid"] = int(dead.stdout)  # (its writer has died; the host is this one)
    (lost / "run.json").write_text(json.dumps(info))

    async def scenario() -> None:
        app = LlmlabApp(small_session(tmp_path), None, engine_factory=fake_factory)
        async with app.run_test(size=SIZE) as pilot:
            await show_runs(pilot, app)
            assert table_rows(app)[0][8] == "lost"
            await wait_for_screen(pilot, "tiny/20250101-120000: lost, no checkpoint")
            await pilot.press("u")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5,
                           "the question")
            await wait_for_screen(pilot, "lost, no checkpoint to resume from")
            assert not fake_engines  # nothing starts before the answer
            await pilot.press("y")
            await wait_for(pilot, lambda: fake_engines and fake_engines[-1].sent, 10,
                           "a command to the engine")
            assert fake_engines[-1].sent[0] == msg.Start(resume=None)  # a new run
            started = fake_engines[-1].session
            assert started.name == "tiny" and started.model.n_embd == 32  # its frozen session
            assert started.resolve(started.train.runs_dir) == (tmp_path / "runs").absolute()


# --------------------------------------------------------------------------- W&B-like


@sync
async def test_legend_x_axis_and_grad_norm_of_the_overlay(real_runs) -> None:
    base, (tiny, other) = real_runs

    async with app_at(base) as (app, pilot):
        pane = await overlay_two(pilot, app)
        # The legend: which colour is which run, on screen.
        assert pane.legend() == [(f"tiny/{tiny.name}", RUN_COLORS[0]),
                                 (f"other/{other.name}", RUN_COLORS[1])]
        for shown in (f"● tiny/{tiny.name}  ● other/{other.name}",
                      "loss: train (line), val (dots) by step"):
            await wait_for(pilot, lambda s=shown: s in screen_text(app), 5, shown)

        train = [r for r in read_metrics(tiny) if r["type"] == "train"]
        evals = [r for r in read_metrics(tiny) if r["type"] == "eval"]
        await pilot.press("a")  # smoothing off: the raw values
        for key, field, title in (("b", "tokens", "by tokens"),
                                  ("b", "elapsed", "by wall time (s)")):
            await pilot.press(key)
            series = {s.label: s for s in pane.plot_data().series}
            assert series[f"tiny/{tiny.name} train"].steps == [r[field] for r in train]
            assert series[f"tiny/{tiny.name} val"].steps == [r[field] for r in evals]
            await wait_for(pilot, lambda t=title: t in screen_text(app), 5, title)
        # tokens = step x batch x context here (the records say so too)
        assert [r["tokens"] for r in train] == [r["step"] * 8 * 32 for r in train]
        await pilot.press("b")
        assert pane.x_axis == "step"

        await pilot.press("y")  # the gradient norm, per run
        series = {s.label: s for s in pane.plot_data().series}
        assert set(series) == {f"tiny/{tiny.name} grad norm",
                               f"other/{other.name} grad norm"}
        assert series[f"tiny/{tiny.name} grad norm"].values == pytest.approx(
            [r["grad_norm"] for r in train])
        await wait_for(pilot, lambda: "gradient norm by step" in screen_text(app), 5,
                       "the grad norm plot")


@sync
async def test_name_notes_and_hyperparameter_diff(real_runs, tmp_path: Path) -> None:
    base, _ = real_runs
    copy = tmp_path / "copy"  # (the runs are renamed: a copy, the module's stay as they are)
    shutil.copytree(base / "runs", copy / "runs")
    tiny, other = (next((copy / "runs" / s).iterdir()) for s in ("tiny", "other"))

    async with app_at(copy) as (app, pilot):
        pane = await show_runs(pilot, app)
        await pilot.press("h")  # the diff, with fewer than two runs overlaid: how to
        await wait_for(pilot, lambda: "overlay two runs or more" in screen_text(app), 5,
                       "the hint")
        await pilot.press("enter", "down", "enter")
        await wait_for(pilot, lambda: len(pane.plot_data().series) == 4, 20, "the curves")
        diff = dict(pane.diff_rows())
        assert diff["name"] == ["tiny", "other"] and diff["optim.lr"] == [1e-3, 3e-3]
        assert "model.n_embd" not in diff  # only what differs
        await wait_for(pilot, lambda: "optim.lr" in screen_text(app), 5, "the diff")
        lr_line = next(line for line in screen_text(app).splitlines() if "optim.lr" in line)
        assert "0.001" in lr_line and "0.003" in lr_line
        await pilot.press("h")
        await wait_for(pilot, lambda: "optim.lr" not in screen_text(app), 5, "diff off")

        # Name and notes of the run under the cursor (other): n, type, enter.
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, RunLabelScreen), 5, "dialog")
        await paste(pilot, "high lr")
        await pilot.press("down")
        await paste(pilot, "3x the lr of tiny")
        await pilot.press("enter")
        await wait_for(pilot, lambda: read_run_info(other).get("notes"), 10, "run.json")
        assert read_run_info(other)["name"] == "high lr"
        assert read_run_info(other)["status"] == "finished"  # the rest kept
        await wait_for(pilot, lambda: any(r.name == "high lr" for r in pane.runs), 20,
                       "the runs read again")
        await wait_for(pilot, lambda: [r[1] for r in table_rows(app)] == [
            f"tiny/{tiny.name}", "high lr"], 5, "the name in the table")
        for shown in (f"● tiny/{tiny.name}  ● high lr",  # the legend
                      "notes 3x the lr of tiny"):  # the cursor run's notes
            await wait_for(pilot, lambda s=shown: s in screen_text(app), 5, shown)
        assert pane.legend()[1] == ("high lr", RUN_COLORS[1])

        await pilot.press("n")  # esc leaves them as they were
        await wait_for(pilot, lambda: isinstance(app.screen, RunLabelScreen), 5, "dialog")
        await pilot.press("ctrl+a", "ctrl+k", "escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, RunLabelScreen), 5, "closed")
        assert read_run_info(other)["name"] == "high lr"


@sync
async def test_an_axis_a_run_did_not_record_says_so(tmp_path: Path) -> None:
    """Synthetic runs record neither wall time nor gradient norm: the plot is empty and the
    legend says there is nothing, rather than an empty frame that looks broken."""
    synthetic_runs(tmp_path)

    async with app_at(tmp_path) as (app, pilot):
        pane = await overlay_two(pilot, app)
        await pilot.press("y")
        assert not any(s.values for s in pane.plot_data().series)
        await wait_for(pilot, lambda: "none recorded" in screen_text(app), 5, "the note")
        await pilot.press("y")
        await wait_for(pilot, lambda: "line train, dots val" in screen_text(app), 5,
                       "the loss legend")
