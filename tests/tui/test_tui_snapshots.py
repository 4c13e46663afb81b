"""Each pane at 80x24, as SVG snapshots (pytest-textual-snapshot).

Nothing time-, speed- or path-dependent is on screen: the corpus is a shipped sample read into
a fresh cache, and the Train pane plays a scripted run. Update the baselines with
`pytest tests/tui --snapshot-update` and look at them before committing.
"""

from __future__ import annotations

from pathlib import Path

from helpers.tui import set_field, small_session, wait_for

from tui.app import LlmlabApp

SIZE = (80, 24)


def _app(tmp_path: Path, factory=None) -> LlmlabApp:
    return LlmlabApp(small_session(tmp_path), None, engine_factory=factory)


def test_dataset_pane(snap_compare, tmp_path: Path) -> None:
    app = _app(tmp_path)

    async def run_before(pilot) -> None:
        await wait_for(pilot, lambda: app.corpus is not None, 30, "the corpus")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_model_pane_with_a_problem(snap_compare, tmp_path: Path) -> None:
    app = _app(tmp_path)

    async def run_before(pilot) -> None:
        await wait_for(pilot, lambda: app.corpus is not None, 30, "the corpus")
        await set_field(pilot, "model.n_head", "5")
        await pilot.press("escape")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def _train_before(app: LlmlabApp):
    async def run_before(pilot) -> None:
        await wait_for(pilot, lambda: app.corpus is not None, 30, "the corpus")
        await pilot.press("s")
        await wait_for(pilot, lambda: len(app.train_pane.history.train_loss) == 60, 10,
                       "the scripted run")
        app.train_pane.redraw()

    return run_before


def test_train_pane(snap_compare, tmp_path: Path, fake_factory) -> None:
    app = _app(tmp_path, fake_factory)
    assert snap_compare(app, terminal_size=SIZE, run_before=_train_before(app))


def test_train_pane_light_theme(snap_compare, tmp_path: Path, fake_factory) -> None:
    app = _app(tmp_path, fake_factory)
    app.theme = "llmlab-light"
    assert snap_compare(app, terminal_size=SIZE, run_before=_train_before(app))


def test_help_screen(snap_compare, tmp_path: Path) -> None:
    app = _app(tmp_path)

    async def run_before(pilot) -> None:
        await wait_for(pilot, lambda: app.corpus is not None, 30, "the corpus")

    assert snap_compare(app, terminal_size=SIZE, press=["question_mark"],
                        run_before=run_before)


def test_sweep_pane(snap_compare, tmp_path: Path) -> None:
    from helpers.sweeps import fake_study

    fake_study(tmp_path / "runs", "tiny", 8, running=(7,), pruned=(2,), failed=(3,))
    app = LlmlabApp(small_session(tmp_path, name="tiny"), None, jobs=False)

    async def run_before(pilot) -> None:
        await pilot.press("k")
        pane = app.query_one("#sweep")
        await wait_for(pilot, lambda: pane.reads >= 1 and pane.state is not None, 30,
                       "the study")
        # (under load the table's rows can be in before the layout that gives it its height)
        await wait_for(pilot, lambda: pane.table.row_count == 8 and pane.table.size.height > 0,
                       30, "the trials table laid out")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
