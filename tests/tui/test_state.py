"""State restored and never stale (issue 10, item 12): a reopened session shows its newest run,
a run-time change stays in the run, the tokenizer row says what vocab_size means, and the form
shows only the fields of the chosen model family. Driven by keys at 80x24."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.tui import (
    app_at,
    jump_to_field,
    notifications,
    screen_text,
    settle,
    shows,
    small_session,
    sync,
    wait_for,
)

from core.session import save_session
from tui.app import LlmlabApp
from tui.screens.confirm import ConfirmScreen

SIZE = (80, 24)


def write_run(runs_root: Path, session: str, run_id: str, steps: int) -> Path:
    """A finished run's folder as the engine leaves it (run.json, metrics.jsonl), by hand."""
    run_dir = runs_root / session / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({
        "session": session, "arch": "gpt", "params": 13952, "max_steps": steps,
        "created": f"2026-01-01T00:00:{len(run_id) % 60:02d}", "status": "finished",
        "step": steps}))
    records = []
    for step in range(5, steps + 1, 5):
        records.append({"type": "train", "step": step, "loss": 3.0 - step / 100, "lr": 1e-3})
        if step % 20 == 0:
            records.append({"type": "eval", "step": step, "split": "val",
                            "val_loss": 3.1 - step / 100, "val_top1": step / 200})
    records.insert(3, {"type": "hparam", "step": 16, "name": "optim.lr", "old": 1e-3,
                       "new": 2e-3})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run_dir


@sync
async def test_a_reopened_session_shows_its_newest_run_on_the_train_pane(tmp_path: Path) -> None:
    """The Train pane was blank after reopening a session that had trained."""
    session = small_session(tmp_path)
    run_dir = write_run(tmp_path / "runs", "tiny", "20260101-000000", 60)
    path = tmp_path / "tiny.toml"
    save_session(session, path)

    app = LlmlabApp(session, path)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.train_pane
        await wait_for(pilot, lambda: len(pane.history.train_loss) == 12, 10,
                       "the saved run's curves")
        data = pane.plot_data()
        assert data["loss"].series[-1].steps == [20.0, 40.0, 60.0]  # val
        assert data["acc"].series[0].values[-1] == pytest.approx(0.3)
        assert data["loss"].markers == [16.0]
        assert pane.saved_run == str(run_dir)
        assert any(str(run_dir) in line for line in pane.event_log.texts)
        # another session, with no run: its Train pane is empty, not the other's curves
        other = small_session(tmp_path)
        other.name = "other"
        app.open_session(other, tmp_path / "other.toml")
        await wait_for(pilot, lambda: len(pane.history.train_loss) == 0, 10,
                       "the curves cleared")
        assert pane.saved_run is None
        await settle(pilot)


@sync
async def test_a_live_lr_change_stays_in_the_run_not_in_the_session(
        tmp_path: Path, fake_factory, fake_engines) -> None:
    """`]` during a run was written into the session (and marked it unsaved)."""
    from core import messages as msg

    async with app_at(tmp_path, engine_factory=fake_factory) as (app, pilot):
        lr = app.session.optim.lr
        assert not app.dirty
        await pilot.press("s")
        pane = app.train_pane
        await wait_for(pilot, lambda: len(pane.history.train_loss) == 60, 10, "events")
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: any(isinstance(c, msg.SetHparam)
                                          for c in fake_engines[-1].sent), 5, "SetHparam")
        assert app.live["optim.lr"] == pytest.approx(4e-3)  # the run's 2e-3, doubled
        assert app.session.optim.lr == lr and not app.dirty
        # when the run ends the change is offered, and copied only when the user says so
        await pilot.press("x")
        await wait_for(pilot, lambda: any("the run changed optim.lr 0.004" in n
                                          for n in notifications(app)), 5, "the offer")
        assert app.session.optim.lr == lr and not app.dirty
        app.action_keep_run_changes()
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "asked")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.session.optim.lr == pytest.approx(4e-3), 5,
                       "the kept lr")
        assert app.dirty
        await settle(pilot)


@sync
async def test_the_tokenizer_row_says_no_cap_and_the_real_vocabulary(tmp_path: Path) -> None:
    """`vocab 0` in the tokenizer row while the statistics said 17."""
    async with app_at(tmp_path) as (app, pilot):
        await wait_for(pilot, lambda: app.corpus is not None, 30, "the corpus")
        await pilot.pause()
        (row,) = [line for line in screen_text(app).splitlines() if "tokenizer" in line]
        assert "no cap" in row and "vocab 17" in row and "vocab 0" not in row
        app.edit("data.vocab_size", 8)
        await wait_for(pilot, lambda: app.dataset_pane.query_one(
            "#dataset-data-vocab_size").editor.value == "8", 5, "the cap shown")
        await settle(pilot)


@sync
async def test_the_form_hides_the_fields_the_model_family_does_not_read(tmp_path: Path) -> None:
    """n_head was shown (and editable) for an lstm, gru or mlp."""
    async with app_at(tmp_path) as (app, pilot):
        await jump_to_field(pilot, "model.arch")
        rows = app.model_pane.rows()
        assert rows["model.n_head"].display and not rows["model.n_hidden"].display
        await pilot.press("minus")  # gpt -> gru
        await wait_for(pilot, lambda: app.session.model.arch == "gru", 5, "gru")
        await pilot.pause()
        assert not rows["model.n_head"].display and not rows["model.activation"].display
        assert rows["model.n_hidden"].display
        await pilot.press("down", "down", "down")  # n_layer, n_embd, n_hidden
        from helpers.tui import _focused_field

        assert _focused_field(app) == "model.n_hidden"
        await app.focus_field("model.n_head")  # (the palette's "Field: model.n_head")
        await wait_for(pilot, lambda: any(
            "model.n_head: only for gpt (model.arch is gru)" in n
            for n in notifications(app)), 5, "the notice")
        await settle(pilot)


@sync
async def test_a_field_jumped_to_below_the_fold_is_on_screen(tmp_path: Path) -> None:
    """The palette's "Field: train.eval_iters", the first time the Model pane showed, left the
    cursor in a field below the visible part of the form (the form scrolled before it was
    laid out)."""
    async with app_at(tmp_path) as (app, pilot):
        await jump_to_field(pilot, "train.eval_iters")
        form = app.model_pane.query_one("#form")
        row = app.model_pane.rows()["train.eval_iters"]
        await wait_for(pilot, lambda: form.region.contains_region(row.region), 5,
                       "the field on screen")
        assert shows(app, "eval_iters")
        await settle(pilot)
