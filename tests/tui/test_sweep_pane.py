"""The Sweep pane: a study's trials (sorted by the metric, state colours), the overlaid
curves, the plots, promote into the session, a damaged journal, and a real `llmlab sweep`
started in a shell followed, then stopped from the pane."""

from __future__ import annotations

from pathlib import Path

from helpers.sessions import small_session
from helpers.sweeps import fake_study
from helpers.tui import notifications, screen_text, shows, sync, wait_for

from core.session import load_session, save_session
from tui.app import LlmlabApp


def _session_file(tmp_path: Path, **fields) -> Path:
    session = small_session(tmp_path, name="tiny", **fields)
    session.sweep.space = {"optim.lr": {"low": 1e-4, "high": 1e-2, "log": True},
                           "model.n_embd": {"choices": [32, 64]}}
    path = tmp_path / "tiny.toml"
    save_session(session, path)
    return path


async def _sweep_pane(app, pilot, reads: int = 1):
    await pilot.press("k")
    pane = app.query_one("#sweep")
    await wait_for(pilot, lambda: pane.reads >= reads and pane.state is not None, 30,
                   "the study read")
    await pilot.pause()
    return pane


@sync
async def test_trials_sorted_by_the_metric_with_their_states_and_curves(tmp_path: Path) -> None:
    fake_study(tmp_path / "runs", "tiny", 8, running=(7,), pruned=(2,), failed=(3,))
    path = _session_file(tmp_path)
    app = LlmlabApp(load_session(path), path, jobs=False)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await _sweep_pane(app, pilot)
        table = pane.table
        shown = table.trials
        bests = [t.best for t in shown if t.best is not None]
        assert bests == sorted(bests) and len(shown) == 8
        assert shown[-1].number == 3 and shown[-1].state == "failed"  # (no value: last)
        best = pane.state.best()
        assert best is not None and shown[0].number == best.number
        # state labels and their colours
        states = {t.number: t.state for t in shown}
        assert states[2] == "pruned" and states[7] == "running" and states[0] == "complete"
        colors = {}
        for row, t in enumerate(shown):
            cell = table.get_row_at(row)[table.get_column_index("state")]
            colors[t.state] = str(cell.style)
        assert len(set(colors.values())) == 4  # complete, running, pruned, failed apart
        assert "pruned at step 10" in screen_text(app) or any(
            "pruned at step 10" in t.reason for t in shown)
        # the curves: one series per trial that wrote a val loss; the pruned one dimmed
        data = pane.plot_data()
        assert sorted(int(s.label[1:]) for s in data.series) == [0, 1, 2, 4, 5, 6, 7]
        dim = {s.label: s.color for s in data.series}
        assert dim["#2"] == "plot-marker" and dim[f"#{best.number}"] == "plot-val"
        assert shows(app, "study 20260101-000000")
        # the other plots: best so far, a field against the metric, importances
        await pilot.press("n")
        assert pane.plot == "best"
        best_line = pane.plot_data().series[-1].values
        assert best_line == sorted(best_line, reverse=True)
        await pilot.press("n")
        scatter = pane.plot_data()
        assert pane.plot == "scatter" and scatter.log_x and len(scatter.series[0].steps) == 5
        await pilot.press("f")
        assert pane.plot_data().title.endswith("model.n_embd")
        await pilot.press("n")
        await pilot.pause()
        assert pane.plot == "importances" and shows(app, "optim.lr")
        await pilot.press("y")
        assert [t.number for t in pane.table.trials] == list(range(8))


@sync
async def test_promote_writes_the_best_params_and_the_saved_file_reloads(tmp_path: Path
                                                                       ) -> None:
    fake_study(tmp_path / "runs", "tiny", 5)
    path = _session_file(tmp_path)
    app = LlmlabApp(load_session(path), path, jobs=False)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await _sweep_pane(app, pilot)
        best = pane.state.best()
        assert best is not None
        before = app.document.session.optim.lr
        await pilot.press("P")
        await wait_for(pilot, lambda: app.document.dirty, 10, "the edit")
        assert app.document.session.optim.lr == best.params["optim.lr"] != before
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not app.document.dirty, 10, "the save")
    again = load_session(path)
    assert again.optim.lr == best.params["optim.lr"]
    assert again.model.n_embd == best.params["model.n_embd"]


@sync
async def test_a_damaged_journal_is_one_line(tmp_path: Path) -> None:
    folder = fake_study(tmp_path / "runs", "tiny", 2)
    (folder / "journal.log").write_bytes(b"\x1b[2J{not json\n")
    path = _session_file(tmp_path)
    app = LlmlabApp(load_session(path), path, jobs=False)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await _sweep_pane(app, pilot)
        assert pane.state.error.startswith("study 20260101-000000: cannot read")
        assert "\x1b" not in pane.state.error
        assert shows(app, "cannot read") and not pane.table.display
        assert not [n for n in notifications(app) if "Traceback" in n]


@sync
async def test_no_study_says_how_to_start_one_and_start_needs_a_saved_session(
        tmp_path: Path) -> None:
    app = LlmlabApp(small_session(tmp_path, name="tiny"), None, jobs=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("k")
        pane = app.query_one("#sweep")
        await wait_for(pilot, lambda: pane.reads >= 1, 30, "the read")
        await pilot.pause()
        assert shows(app, "no sweep of tiny yet")
        await pilot.press("s")
        await pilot.pause()
        assert any("save the session first" in n for n in notifications(app))
        assert not pane.launched
