"""The Train pane's Evaluate: a key (and the palette) evaluates the model on a whole split in
the engine, the pane says so at once, and the report shows in the pane and its log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from helpers.tui import _palette_has, paste, screen_text, wait_for

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
            for name in ("loss", "perplexity", "bits/char", "top-1", "top-5", "macro-F1",
                         "ROC AUC"):
                assert name in text, name
            assert f"{report.figures['macro_f1']:.4f}" in text
            assert f"{report.figures['roc_auc']:.4f}" in text
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


def test_grad_norm_plot_and_eval_samples_in_the_log(session: Session) -> None:
    """n turns the lower side plot into the gradient norm of the run; each evaluation's
    sample is a line of the log, its line breaks and control characters made harmless."""
    from helpers.tui import FakeEngine, fake_run

    def script(command: msg.Command) -> list[msg.Event]:
        if not isinstance(command, msg.Start):
            return []
        events: list[msg.Event] = []
        for event in fake_run():
            if isinstance(event, msg.StepMetrics):
                event.grad_norm = 10.0 / event.step
            events.append(event)
            if isinstance(event, msg.EvalMetrics):
                events.append(msg.EvalSample(event.step, "To be",
                                             f" or\nnot\x1b[2J {event.step}"))
        return events

    async def scenario() -> None:
        app = LlmlabApp(session, None, engine_factory=lambda s: FakeEngine(s, script))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            pane = app.query_one(TrainPane)
            await wait_for(pilot, lambda: len(pane.history.train_loss) == 60, 10, "events")
            assert pane.plot_data()["lr"].series[0].label == "lr"
            await pilot.press("n")
            side = pane.plot_data()["lr"]
            assert side.series[0].label == "grad norm"
            assert side.series[0].values == [10.0 / step for step in side.series[0].steps]
            assert side.series[0].steps == [float(step) for step in range(1, 61)]
            await wait_for(pilot, lambda: "grad norm (before clipping)" in screen_text(app), 5,
                           "the grad norm plot")
            samples = [t for t in pane.event_log.texts if " sample: " in t]
            assert samples == [f"step {s} sample: To be│ or↵not␛[2J {s}"
                               for s in (20, 40, 60)]
            await pilot.press("n")
            assert pane.plot_data()["lr"].series[0].label == "lr"

    asyncio.run(scenario())


def test_a_reopened_sessions_run_plots_its_grad_norm(tmp_path: Path) -> None:
    from helpers.tui import small_session

    from core.run_writer import RunWriter
    from core.session import save_session

    session = small_session(tmp_path)
    run_dir = tmp_path / "runs" / "tiny" / "20260101-000000"
    run_dir.mkdir(parents=True)
    writer = RunWriter(run_dir)
    writer.write_session(session)
    for step in range(5, 65, 5):
        writer.log({"type": "train", "step": step, "loss": 3.0 - step / 60, "lr": 1e-3,
                    "grad_norm": 1.0 / step})
    writer.update_info(session="tiny", arch="gpt", status="finished", max_steps=60)
    writer.close()
    path = tmp_path / "tiny.toml"
    save_session(session, path)

    async def scenario() -> None:
        app = LlmlabApp(session, path)
        async with app.run_test(size=SIZE) as pilot:
            pane = app.query_one(TrainPane)
            await wait_for(pilot, lambda: len(pane.history.train_loss) == 12, 10,
                           "the saved run's curves")
            await pilot.press("t", "n")
            side = pane.plot_data()["lr"].series[0]
            assert side.label == "grad norm"
            assert side.values == pytest.approx([1.0 / s for s in range(5, 65, 5)])

    asyncio.run(scenario())
