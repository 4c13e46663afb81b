"""The app's pure parts: smoothing, downsampling, nudging, keymaps, themes, settings, CLI."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from llmlab.cli import _app_session
from tui.keymap import default_keymap, load_user_keymap
from tui.nudge import format_number, nudge
from tui.settings import Settings, load_settings, save_settings
from tui.smoothing import debiased_ema, downsample
from tui.themes import ThemeFileError, load_theme_file, load_themes, shipped_theme_dir

# --------------------------------------------------------------------------- smoothing


def _tensorboard(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing, transcribed from its chart code (vz_line_chart2)."""
    last, num_accum, out = 0.0, 0, []
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        num_accum += 1
        out.append(last / (1 - weight**num_accum))
    return out


def test_debiased_ema_matches_tensorboard() -> None:
    values = [3.0, 2.5, 2.7, 2.1, 1.9, 2.0, 1.5, 1.4]
    for weight in (0.0, 0.3, 0.6, 0.9, 0.99):
        assert debiased_ema(values, weight) == pytest.approx(_tensorboard(values, weight))


def test_debiased_ema_starts_at_the_first_value_not_at_zero() -> None:
    smoothed = debiased_ema([4.0, 4.2, 3.8], 0.9)
    assert smoothed[0] == pytest.approx(4.0)  # a plain EMA from 0 would give 0.4
    assert all(3.8 <= v <= 4.2 for v in smoothed)


def test_debiased_ema_edge_cases() -> None:
    assert debiased_ema([], 0.6) == []
    assert debiased_ema([1.5, 1.5, 1.5], 0.6) == [1.5, 1.5, 1.5]  # constant: untouched
    assert debiased_ema([1.0, 2.0, 3.0], 0.0) == pytest.approx([1.0, 2.0, 3.0])
    out = debiased_ema([1.0, float("nan"), 3.0], 0.5)
    assert out[0] == 1.0 and math.isnan(out[1])
    assert out[2] == pytest.approx((0.5 * 0.5 * 1.0 + 0.5 * 3.0) / (1 - 0.25))
    with pytest.raises(ValueError):
        debiased_ema([1.0], 1.0)


def test_downsample_keeps_ends_and_bounds_points() -> None:
    xs = list(range(10_000))
    ys = [float(x % 7) for x in xs]
    dx, dy = downsample(xs, ys, 100)
    assert len(dx) == len(dy) == 100
    assert (dx[0], dy[0], dx[-1], dy[-1]) == (0, 0.0, 9999, ys[-1])
    assert dx == sorted(dx)
    assert downsample([1, 2], [3.0, 4.0], 100) == ([1, 2], [3.0, 4.0])


# --------------------------------------------------------------------------- nudging


def test_nudge_doubles_sizes_and_rates_and_steps_counts() -> None:
    lo1 = {"lo": 1}
    assert nudge("model.n_embd", 128, +1, lo1) == 256
    assert nudge("model.n_embd", 128, -1, lo1) == 64
    assert nudge("model.n_embd", 1, -1, lo1) == 1  # 0 would leave the range
    assert nudge("optim.lr", 1e-3, +1, {"lo": 0.0, "lo_open": True}) == 2e-3
    assert nudge("model.n_layer", 4, +1, lo1) == 5
    assert nudge("model.n_layer", 1, -1, lo1) == 1
    frac = {"lo": 0.0, "hi": 1.0, "hi_open": True}
    assert nudge("model.dropout", 0.1, +1, frac) == pytest.approx(0.15)
    assert nudge("model.dropout", 0.0, -1, frac) == 0.0
    assert nudge("optim.min_lr", 0.0, +1, {"lo": 0.0}) == 1e-5
    assert format_number(0.001) == "0.001" and format_number(3e-5) == "3e-05"


# --------------------------------------------------------------------------- keymap


def test_default_keymap_names_every_pane_and_training_key() -> None:
    keymap = default_keymap()
    for binding_id in ("app.dataset", "app.model", "app.train", "app.prune", "app.generate",
                       "app.runs", "app.help", "app.save",
                       "app.open", "train.start", "train.pause", "train.stop",
                       "train.lr_up", "train.lr_down", "train.edit", "train.smoothing",
                       "train.log_scale"):
        assert keymap[binding_id]


def test_user_keymap_overrides_and_reports_unknown_ids(tmp_path: Path) -> None:
    path = tmp_path / "keymap.toml"
    path.write_text('[train]\nstart = "f5"\nbogus = "x"\n[app]\nhelp = 3\n')
    keymap, problems = load_user_keymap(path)
    assert keymap == {"train.start": "f5"}
    assert any("train.bogus" in p for p in problems)
    assert any("app.help" in p for p in problems)
    assert load_user_keymap(tmp_path / "missing.toml") == ({}, [])
    (tmp_path / "bad.toml").write_text("[train\n")
    keymap, problems = load_user_keymap(tmp_path / "bad.toml")
    assert keymap == {} and len(problems) == 1


# --------------------------------------------------------------------------- themes


def test_shipped_themes_load() -> None:
    themes, problems = load_themes([shipped_theme_dir()])
    names = {t.name for t in themes}
    assert problems == []
    assert {"llmlab-dark", "llmlab-light", "llmlab-contrast", "llmlab-ansi"} <= names
    assert any(not t.dark for t in themes)


def test_user_theme_is_added_and_a_bad_one_reported(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text('name = "mine"\nprimary = "#ff0000"\n')
    (tmp_path / "broken.toml").write_text('name = "broken"\nprimary = "not-a-colour"\n')
    themes, problems = load_themes([shipped_theme_dir(), tmp_path])
    assert "mine" in {t.name for t in themes}
    assert len(problems) == 1 and "broken.toml" in problems[0]
    with pytest.raises(ThemeFileError, match="needs a primary"):
        (tmp_path / "x.toml").write_text('name = "x"\n')
        load_theme_file(tmp_path / "x.toml")


def test_settings_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    assert load_settings(path) == Settings()
    save_settings(Settings(theme="llmlab-light"), path)
    assert load_settings(path).theme == "llmlab-light"
    path.write_text("theme = [")
    assert load_settings(path) == Settings()


# --------------------------------------------------------------------------- CLI, imports


def test_cli_opens_the_app_only_without_a_subcommand() -> None:
    assert _app_session([]) == (True, None)
    assert _app_session(["my.toml"]) == (True, "my.toml")
    assert _app_session(["check", "x.toml"]) == (False, None)
    assert _app_session(["train"]) == (False, None)
    assert _app_session(["--help"]) == (False, None)


def test_the_ui_process_never_imports_torch() -> None:
    code = ("import sys\n"
            "from tui.app import LlmlabApp\n"
            "from tui.engine_client import EngineClient\n"
            "import tui.panes.dataset, tui.panes.train\n"
            "assert 'torch' not in sys.modules, 'torch imported by the UI'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_bad_session_file_is_reported_before_the_app_starts(tmp_path: Path, capsys) -> None:
    from llmlab.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nn_layer = 0\nn_heads = 4\n')
    assert main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert "model.n_layer: must be >= 1 (got 0)" in err
    assert "model.n_heads: unknown key (did you mean 'n_head'?)" in err


# --------------------------------------------------------------------------- the app's rules


def test_engine_events_reach_subscribers_once_without_bubbling_twice() -> None:
    """The bridge posts every event to its target (bubbling to the app) and a copy, which
    does not bubble, to each widget subscribed to its kind."""
    from core import messages as msg
    from tui.engine_client import EngineClient
    from tui.messages import EngineEvent

    class Pump:
        def __init__(self) -> None:
            self.got: list = []

        def post_message(self, message) -> bool:
            self.got.append(message)
            return True

    target, pane, other = Pump(), Pump(), Pump()
    client = EngineClient(target)  # type: ignore[arg-type]
    client.subscribe(pane, msg.ModelLoaded, msg.Status)  # type: ignore[arg-type]
    client.subscribe(other, msg.Compressed)  # type: ignore[arg-type]
    figures = msg.ModelFigures("dense", 10, 10, 0.0, 40, 1.0, 2.7, 0.5, 0.9, 1.0)
    client._dispatch(msg.ModelLoaded("runs/a/1", "gpt", 60, 17, 32, figures))
    client._dispatch(msg.Status("idle"))
    assert [type(m) for m in target.got + pane.got] == [EngineEvent] * 4
    assert [type(m.event) for m in target.got] == [msg.ModelLoaded, msg.Status]
    assert [type(m.event) for m in pane.got] == [msg.ModelLoaded, msg.Status]
    assert other.got == []
    assert all(m._stop_propagation for m in pane.got)  # the app already has its own copy
    assert not any(m._stop_propagation for m in target.got)
    assert pane.got[0].event is target.got[0].event


def test_no_pane_key_hides_a_key_of_the_app() -> None:
    """A pane's binding wins over the app's while the pane has focus: one on an app key
    (a pane switch, start/stop, save) would make that key dead in the pane."""
    from tui.app import LlmlabApp
    from tui.panes.dataset import DatasetPane
    from tui.panes.generate import GeneratePane
    from tui.panes.model import ModelPane
    from tui.panes.prune import PrunePane
    from tui.panes.runs import RunsPane
    from tui.panes.train import TrainPane

    def keys_of(bindings) -> set[str]:
        return {key.strip() for b in bindings for key in b.key.split(",")}

    app_keys = keys_of(LlmlabApp.BINDINGS)
    assert {"d", "m", "t", "p", "g", "r", "s", "x", "space"} <= app_keys
    for pane in (DatasetPane, ModelPane, TrainPane, PrunePane, GeneratePane, RunsPane):
        assert not keys_of(pane.BINDINGS) & app_keys, pane.__name__


def test_plot_ticks_are_round_whole_numbers() -> None:
    from tui.widgets.metric_plot import nice_ticks, tick_label

    assert nice_ticks(0, 95, most=5) == [0, 25, 50, 75]
    assert nice_ticks(0, 2000, most=5) == [0, 500, 1000, 1500, 2000]
    assert nice_ticks(1, 60, most=4) == [20, 40, 60]
    assert nice_ticks(3, 3) == [3]
    for lo, hi, most in [(0, 1, 3), (7, 123_457, 6), (1, 59, 2), (250, 251, 5)]:
        ticks = nice_ticks(lo, hi, most)
        assert 1 <= len(ticks) <= most and lo <= ticks[0] and ticks[-1] <= hi
        gaps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
        assert len(gaps) <= 1  # evenly spaced
    assert [tick_label(x) for x in (0, 250, 1500, 12_000, 2_500_000)] == [
        "0", "250", "1500", "12k", "2.5M"]


def test_engine_events_after_the_screen_is_gone_are_ignored(tmp_path: Path) -> None:
    """An event can still reach the app while it shuts down (its screen gone): no error,
    and no engine started to load the run that just stopped."""
    sys.path.insert(0, str(Path(__file__).parent))
    from helpers.tui import small_session

    from core import messages as msg
    from tui.app import LlmlabApp
    from tui.messages import EngineEvent

    app = LlmlabApp(small_session(tmp_path), None)
    app.on_engine_event(EngineEvent(msg.Status("stopped")))
    app.on_engine_event(EngineEvent(msg.RunStarted("r", "gpt", 1, 1, 1, 10, 0, "cpu", "fp32")))
    app.on_engine_event(EngineEvent(msg.StepMetrics(1, 8, 1.0, 1e-3, 1.0, 1.0, 0.0, 0.1)))
    assert app.model_loading is None


def test_a_narrow_title_bar_shortens_the_session_name_not_the_state() -> None:
    import asyncio

    from textual.app import App, ComposeResult

    from tui.panes import PANES
    from tui.widgets.title_bar import TitleBar, fit

    assert fit("tiny-tales-gpt", 8) == "tiny…gpt" and fit("tiny", 8) == "tiny"

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield TitleBar([(p.pane_name(), p.TITLE) for p in PANES])

    async def scenario() -> None:
        app = One()
        async with app.run_test(size=(80, 3)) as pilot:
            bar = app.query_one(TitleBar)
            bar.session_name, bar.dirty = "a-very-long-session-name-indeed", True
            bar.state, bar.step = "stopped", "160/2000"
            await pilot.pause()
            line = str(bar.render())
            assert line.rstrip().endswith("stopped 160/2000")
            assert "…" in line and line.count("*") == 1 and len(line) <= 80

    asyncio.run(scenario())


def test_the_app_sees_an_engine_event_before_any_pane() -> None:
    from core import messages as msg
    from tui.engine_client import EngineClient

    order: list[str] = []

    class Pump:
        def __init__(self, name: str) -> None:
            self.name = name

        def post_message(self, message) -> bool:
            order.append(self.name)
            return True

    client = EngineClient(Pump("target"),  # type: ignore[arg-type]
                          observe=lambda event: order.append(type(event).__name__))
    client.subscribe(Pump("pane"), msg.ModelLoaded)  # type: ignore[arg-type]
    figures = msg.ModelFigures("dense", 10, 10, 0.0, 40, 1.0, 2.7, 0.5, 0.9, 1.0)
    client._dispatch(msg.ModelLoaded("runs/a/1", "gpt", 60, 17, 32, figures))
    assert order == ["ModelLoaded", "target", "pane"]
