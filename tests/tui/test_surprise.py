"""The surprise heatmap of the Dataset pane: each token of the preview coloured by its loss
under the loaded model (h), with a legend and the mean loss of the span."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.tui import (
    FakeEngine,
    notifications,
    screen_text,
    shows,
    small_session,
    wait_for,
    wait_for_screen,
)

from core import messages as msg
from core.session import Session, save_session
from core.values import ModelFigures
from tui.app import LlmlabApp
from tui.widgets.surprise_legend import HEAT_LEVELS, HeatScale, heat_style
from tui.widgets.token_preview import TokenPreview

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = (80, 24)


def _preview(app: LlmlabApp) -> TokenPreview:
    return app.dataset_pane.query_one(TokenPreview)


def _styles(content) -> set[str]:
    return {str(span.style) for span in content.spans}


async def _open_dataset(pilot, app: LlmlabApp) -> None:
    await wait_for(pilot, lambda: app.corpus is not None, 30, "the corpus")
    await wait_for(pilot, lambda: _preview(app).text, 10, "the preview")
    await pilot.pause()


# --------------------------------------------------------------------------- the colour scale


def test_heat_scale_buckets_grow_with_the_loss() -> None:
    scale = HeatScale.for_mean(1.0)
    assert scale.step == pytest.approx(0.4)
    losses = [i * 0.05 for i in range(200)] + [math.inf]
    buckets = [scale.bucket(x) for x in losses]
    assert buckets == sorted(buckets)  # monotonic
    assert buckets[0] == 0 and buckets[-1] == HEAT_LEVELS - 1
    assert set(buckets) == set(range(HEAT_LEVELS))  # every colour is used over the range
    assert scale.bucket(1.0) == HEAT_LEVELS // 2  # the mean is in the middle colour
    assert scale.bucket(-0.0) == 0
    assert scale.bucket(math.nan) is None  # the first token: nothing predicts it
    assert scale.edges == pytest.approx([0.0, 0.4, 0.8, 1.2, 1.6])


@pytest.mark.parametrize("mean", [0.003, 0.07, 0.9, 2.5, 11.0])
def test_heat_scale_keeps_the_mean_in_the_middle(mean: float) -> None:
    scale = HeatScale.for_mean(mean)
    assert scale.step > 0
    assert scale.bucket(mean) in (HEAT_LEVELS // 2 - 1, HEAT_LEVELS // 2, HEAT_LEVELS // 2 + 1)
    assert scale.bucket(0.0) == 0 and scale.bucket(100 * mean) == HEAT_LEVELS - 1


def test_heat_scale_without_a_mean_is_still_a_scale() -> None:
    for mean in (math.nan, 0.0, -1.0, math.inf):
        scale = HeatScale.for_mean(mean)
        assert scale.step > 0 and scale.bucket(scale.step * 10) == HEAT_LEVELS - 1


# --------------------------------------------------------------------------- with a real model


def test_h_colours_the_preview_by_each_tokens_loss(trained, thread_factory) -> None:
    session, run_dir = trained
    app = LlmlabApp(session, None, engine_factory=thread_factory)
    asyncio.run(_heatmap_on_off(app, run_dir))


async def _heatmap_on_off(app: LlmlabApp, run_dir: Path) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await _open_dataset(pilot, app)
        preview = _preview(app)
        assert not preview.heat_shown
        boundaries = preview.render()
        await wait_for_screen(pilot, "token boundaries")

        await pilot.press("h")
        await wait_for(pilot, lambda: preview.heat_shown, 60, "the heatmap")
        assert app.model_source == str(run_dir)  # h loaded the session's newest run
        pane = app.dataset_pane
        scored = pane.scored
        assert scored.source == str(run_dir)
        sent = [c for c in app.client.engine.sent if isinstance(c, msg.ScoreText)]
        assert [c.text for c in sent] == [preview.text]  # the preview's text was scored
        # one loss per token, finite except the first (nothing predicts it)
        assert len(preview.losses) == len(preview.heat_spans) == len(preview.text) > 100
        assert math.isnan(preview.losses[0])
        assert all(math.isfinite(x) and x >= 0 for x in preview.losses[1:])
        assert scored.mean_loss == pytest.approx(sum(preview.losses[1:]) /
                                                 (len(preview.losses) - 1))
        # different tokens get different colours, from the heat scale
        content = preview.render()
        styles = _styles(content)
        assert len(styles) >= 2 and styles <= {heat_style(i) for i in range(HEAT_LEVELS)}
        assert content.spans != boundaries.spans
        # the legend: the scale in nats, the mean loss of the span and the model
        await pilot.pause()
        await wait_for_screen(pilot, f"mean {scored.mean_loss:.3f} nats")
        text = screen_text(app)
        assert f"mean {scored.mean_loss:.3f} nats" in text
        assert f"{scored.mean_loss / math.log(2):.2f} bits/tok" in text
        assert f"{run_dir.parent.name}/{run_dir.name}" in text
        assert "nats" in text and "token boundaries" not in text

        await pilot.press("h")
        await pilot.pause()
        assert not preview.heat_shown
        assert preview.render().spans == boundaries.spans
        await wait_for_screen(pilot, "token boundaries")
        await wait_for(pilot, lambda: not shows(app, "each token's loss"), 5, "no legend")

        # on again: the same text and model, shown at once without scoring again
        await pilot.press("h")
        await pilot.pause()
        assert preview.heat_shown
        assert len([c for c in app.client.engine.sent if isinstance(c, msg.ScoreText)]) == 1

        # Another corpus, whose characters the model's tokenizer does not have: the scoring
        # fails with one line in the pane, and the preview shows the token boundaries.
        await pilot.press("tab", "enter", "up", "up", "enter", "escape")
        await wait_for(pilot, lambda: app.corpus is not None
                       and app.corpus.data.corpus == "sample:tiny-tales", 30, "tiny-tales")
        await wait_for(pilot, lambda: pane.heat_error, 30, "the scoring to fail")
        assert "not in the vocabulary" in pane.heat_error
        assert not preview.heat_shown and preview.text.startswith(app.corpus.preview[:20])
        await pilot.pause()
        await wait_for_screen(pilot, "✗ surprise: text has characters not in the vocabulary")
        assert len(preview.render().spans) > 100  # the token boundaries
        assert app.focused is pane

        # Back to the model's own corpus: scored again.
        await pilot.press("tab", "enter", "down", "down", "enter", "escape")
        await wait_for(pilot, lambda: preview.heat_shown and app.corpus.data.corpus
                       == "sample:synthetic", 60, "the heatmap of the synthetic corpus")
        assert pane.heat_error is None
        await wait_for_screen(pilot, f"mean {pane.scored.mean_loss:.3f} nats")


# --------------------------------------------------------------------------- scripted engine

RUN_ID = "20250101-120000"


def _figures() -> ModelFigures:
    return ModelFigures("dense", params=13952, nonzero=13952, sparsity=0.0,
                            size_bytes=55808, loss=1.5, perplexity=4.48, top1=0.5, top5=0.9,
                            latency_ms=1.0)


def scripted_losses(text: str) -> tuple[list[tuple[int, int]], list[float], float]:
    """Char tokens and made-up losses: (i*7) % 5 * 0.5 nats, NaN for the first."""
    spans = [(i, i + 1) for i in range(len(text))]
    losses = [math.nan] + [(i * 7) % 5 * 0.5 for i in range(1, len(text))]
    rest = losses[1:]
    return spans, losses, sum(rest) / len(rest) if rest else math.nan


def scored_script() -> Callable[[msg.Command], list[msg.Event]]:
    """An engine that loads any run and scores text with `scripted_losses`."""
    loaded: list[str] = []

    def script(command: msg.Command) -> list[msg.Event]:
        if isinstance(command, msg.LoadRun):
            loaded.append(command.path)
            return [msg.ModelLoaded(command.path, "gpt", 60, 17, 32, _figures())]
        if isinstance(command, msg.ScoreText):
            if not loaded:
                return [msg.Error("no model loaded: load a run first (LoadRun)", fatal=False,
                                  request_id=command.request_id)]
            spans, losses, mean = scripted_losses(command.text)
            return [msg.TextScored(loaded[-1], spans, losses, mean,
                                   request_id=command.request_id)]
        return []

    return script


def _session_with_a_run(tmp_path: Path) -> Session:
    """A session whose runs folder holds one (empty) run, for the app to load by name."""
    session = small_session(tmp_path)
    run_dir = Path(session.train.runs_dir) / session.name / RUN_ID
    run_dir.mkdir(parents=True)
    save_session(session, run_dir / "session.toml")
    return session


def _scripted_app(tmp_path: Path, engines: list[FakeEngine]) -> LlmlabApp:
    def factory(session: Session) -> FakeEngine:
        engines.append(FakeEngine(session, scored_script()))
        return engines[-1]

    return LlmlabApp(_session_with_a_run(tmp_path), None, engine_factory=factory)


def test_heatmap_snapshot(snap_compare, tmp_path: Path) -> None:
    engines: list[FakeEngine] = []
    app = _scripted_app(tmp_path, engines)

    async def run_before(pilot) -> None:
        await _open_dataset(pilot, app)
        await pilot.press("h")
        await wait_for(pilot, lambda: _preview(app).heat_shown, 10, "the heatmap")
        app.clear_notifications()  # (the "loading <path>" toast names a temporary folder)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)



def test_h_without_any_run_says_how_to_get_a_model(tmp_path: Path) -> None:
    engines: list[FakeEngine] = []

    def factory(session: Session) -> FakeEngine:
        engines.append(FakeEngine(session, scored_script()))
        return engines[-1]

    app = LlmlabApp(small_session(tmp_path), None, engine_factory=factory)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await _open_dataset(pilot, app)
            await pilot.press("h")
            await pilot.pause()
            assert any("train one (s)" in n and "Runs" in n for n in notifications(app))
            assert not app.dataset_pane.heatmap and not _preview(app).heat_shown
            await wait_for_screen(pilot, "token boundaries")
            assert not any(isinstance(c, msg.ScoreText) for e in engines for c in e.sent)

    asyncio.run(scenario())


def test_another_model_scores_again_and_stale_answers_are_ignored(tmp_path: Path) -> None:
    from tui.messages import EngineEvent, LoadModelRequest

    engines: list[FakeEngine] = []
    app = _scripted_app(tmp_path, engines)
    other = tmp_path / "runs" / "tiny" / "20250202-120000"

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await _open_dataset(pilot, app)
            pane, preview = app.dataset_pane, _preview(app)
            await pilot.press("h")
            await wait_for(pilot, lambda: preview.heat_shown, 10, "the heatmap")
            first = pane.scored
            _, losses, mean = scripted_losses(preview.text)
            assert preview.losses[1:] == losses[1:] and first.mean_loss == mean
            await wait_for_screen(pilot, "tiny/20250101-120000 (step 60)")

            # Another model is loaded (as the Runs pane asks for one): scored again under it.
            other.mkdir(parents=True)
            app.post_message(LoadModelRequest(str(other)))
            await wait_for(pilot, lambda: pane.scored is not first, 10, "the second scoring")
            assert pane.scored.source == str(other)
            await wait_for_screen(pilot, "tiny/20250202-120000")
            scores = [c for c in engines[-1].sent if isinstance(c, msg.ScoreText)]
            assert len(scores) == 2 and scores[0].request_id != scores[1].request_id

            # A late answer to the first request changes nothing.
            stale = msg.TextScored("elsewhere", [(0, 1)], [9.0], 9.0,
                                   request_id=scores[0].request_id)
            pane.post_message(EngineEvent(stale))
            await pilot.pause()
            assert pane.scored.source == str(other) and len(preview.losses) == len(preview.text)

    asyncio.run(scenario())
