"""The Train pane's Evaluate: a key (and the palette) evaluates the model on a whole split in
the engine, the pane says so at once, and the report shows in the pane and its log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tui_helpers import _palette_has, paste, screen_text, wait_for

from core import messages as msg
from core.session import Session
from tui.app import LlmlabApp
from tui.panes.train import TrainPane
from tui.widgets.eval_report import EvalReportView, figure_lines

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SIZE = (80, 24)


def evaluations(app: LlmlabApp) -> list[msg.Evaluated]:
    view = app.query_one(EvalReportView)
    return [view.report] if view.report is not None else []


def test_the_evaluate_key_shows_a_full_split_report_in_the_train_pane(
        trained: tuple[Session, Path], thread_factory) -> None:
    session, run_dir = trained

    async def scenario() -> None:
        app = LlmlabApp(session, None, engine_factory=thread_factory)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("t")
            pane = app.query_one(TrainPane)
            await pilot.press("v")
            # At once, whether or not the engine has answered: the pane says what it does.
            assert "evaluating the val split …" in pane.event_log.texts
            await wait_for(pilot, lambda: evaluations(app), 60, "the evaluation report")
            report = evaluations(app)[0]
            assert Path(report.source) == run_dir and report.split == "val"
            assert report.scope.startswith("full val split: ")
            await pilot.pause()
            text = screen_text(app)
            assert f"{run_dir.parent.name}/{run_dir.name} step 60, full val split" in text
            for name in ("loss", "perplexity", "bits/char", "top-1", "top-5", "macro-F1"):
                assert name in text, name
            assert f"{report.figures['macro_f1']:.4f}" in text
            assert any(line.startswith("evaluated full val split: ")
                       for line in pane.event_log.texts)

            # The test split, from the palette: this session has none, and says so.
            await pilot.press("ctrl+p")
            await paste(pilot, "Train: evaluate (test split)")
            await wait_for(pilot, lambda: _palette_has(app, "Train: evaluate (test split)"),
                           10, "the palette entry")
            await pilot.press("enter")
            await wait_for(pilot, lambda: any("test split has 0 tokens" in t
                                              for t in pane.event_log.texts), 30,
                           "the test split's error")
            assert evaluations(app)[0] is report  # the last report stays
            assert isinstance(app.client.engine.sent[-1], msg.Evaluate)
            assert app.client.engine.sent[-1].split == "test"

    asyncio.run(scenario())


def test_report_lines_fit_the_width() -> None:
    rows = [("loss", "1.2345", ""), ("perplexity", "3.44", ""), ("bits/token", "1.7800", ""),
            ("bits/char", "1.7800", ""), ("top-1", "45.00%", ""), ("top-5", "80.00%", ""),
            ("macro-F1", "0.3456", "")]
    for width in (30, 76, 200):
        lines = figure_lines(rows, width)
        assert [pair for line in lines for pair in line] == [(n, v) for n, v, _ in rows]
        for line in lines:
            assert len("  ".join(f"{n} {v}" for n, v in line)) <= width
    assert len(figure_lines(rows, 76)) == 2  # at 80 columns: two lines of figures
