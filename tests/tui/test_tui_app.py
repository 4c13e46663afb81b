"""The app driven by keys, as a user drives it (Textual's Pilot, 80x24).

Waiting is always for a state with a deadline (`wait_for`), never a fixed sleep. The two
tests marked `engine` spawn the real engine process and train a tiny model on the synthetic
corpus; the others use a scripted engine.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from helpers.tui import (
    _palette_has,
    notifications,
    paste,
    screen_text,
    set_field,
    small_session,
    type_text,
    wait_for,
    wait_for_screen,
)

from core.runs import read_metrics
from core.session import load_session
from tui.app import LlmlabApp
from tui.document import is_shipped
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.path_picker import PathPickerScreen
from tui.screens.quit_job import QuitJobScreen

SIZE = (80, 24)


def run(coro) -> None:
    asyncio.run(coro)



def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --------------------------------------------------------------------------- the whole loop


def test_pick_sample_set_model_train_change_lr_stop_save_reopen(tmp_path: Path) -> None:
    """The issue's loop, by keys, on the real engine."""
    session = small_session(tmp_path)
    session.data.corpus = "sample:tiny-tales"
    saved = tmp_path / "saved" / "tiny.toml"
    saved.parent.mkdir()

    async def scenario() -> None:
        app = LlmlabApp(session, None)
        async with app.run_test(size=SIZE) as pilot:
            # Dataset: pick the synthetic sample in the corpus list.
            await wait_for(pilot, lambda: app.corpus is not None, 30, "the corpus stats")
            await pilot.press("tab", "enter", "down", "down", "enter")
            await wait_for(pilot, lambda: app.corpus is not None
                           and app.corpus.data.corpus == "sample:synthetic", 30,
                           "the synthetic corpus")
            assert app.session.data.corpus == "sample:synthetic"
            await wait_for_screen(pilot, "vocabulary 17")

            # Model: a small GPT, typed into the form.
            for path, value in [("model.n_layer", "1"), ("model.n_embd", "32"),
                                ("model.n_head", "2"), ("model.context", "32")]:
                await set_field(pilot, path, value)
            m = app.session.model
            assert (m.n_layer, m.n_embd, m.n_head, m.context) == (1, 32, 2, 32)
            assert app.problem_lines == []
            await wait_for_screen(pilot, "params        14k")  # the live summary

            # Train: start and watch the loss fall in the plot's data.
            await pilot.press("escape", "s")
            pane = app.train_pane

            def loss_fell() -> bool:
                losses = pane.plot_data()["loss"].series[0].values
                return len(losses) >= 4 and losses[-1] < losses[0] - 0.4

            await wait_for(pilot, loss_fell, 90, "the training loss to fall")
            assert app.training.state == "running"
            run_dir = Path(app.training.run_dir)

            # Live lr change by key: marked on the plot, recorded in the run.
            old_lr = app.live["optim.lr"]
            await pilot.press("right_square_bracket")

            def lr_recorded() -> list[dict]:
                return [r for r in read_metrics(run_dir)
                        if r.get("type") == "hparam" and r.get("name") == "optim.lr"]

            records = await wait_for(pilot, lr_recorded, 30, "the lr change in metrics.jsonl")
            assert records[0]["old"] == pytest.approx(old_lr)
            assert records[0]["new"] == pytest.approx(2 * old_lr)
            await wait_for(pilot, lambda: pane.history.markers, 10, "the plot marker")
            assert pane.plot_data()["loss"].markers == [float(records[0]["step"])]
            assert any("optim.lr" in line for line in pane.event_log.texts)

            # A field that is not live: the app says it needs a restart.
            await pilot.press("m")
            await set_field(pilot, "train.batch_size", "16")
            assert any("needs a restart" in n for n in notifications(app))
            await pilot.press("escape", "t")

            # Toggles change what is plotted.
            await pilot.press("l", "a")
            data = pane.plot_data()["loss"]
            assert data.log_y and len(data.series) == 2  # no smoothed series when off
            await pilot.press("l", "a")

            # Stop: the engine saves a checkpoint.
            await pilot.press("x")
            await wait_for(pilot, lambda: app.training.state == "stopped", 60, "the stop")
            assert list((run_dir / "checkpoints").glob("step-*"))
            # The run just trained is loaded for the Prune and Generate panes.
            await wait_for(pilot, lambda: app.model_source == str(run_dir), 60,
                           "the trained model loaded")
            # Across the process boundary: prune a copy, then generate from both models.
            await pilot.press("p")
            prune = app.query_one("#prune")
            await wait_for(pilot, lambda: prune.dense is not None, 60, "the dense figures")
            await pilot.press("right", "right")
            await wait_for(pilot, lambda: prune.candidate is not None and not prune.pruning
                           and prune.candidate.label == "magnitude 10%", 60, "the candidate")
            await pilot.press("g", "v", "n")
            gen = app.query_one("#generate")
            await wait_for(pilot, lambda: gen.generations_done == 2, 60, "both columns")
            assert gen.column("dense").text and gen.column("compressed").text

            # Save (the session has no file yet: the app asks where).
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: isinstance(app.screen, PathPickerScreen), 10,
                           "the save dialog")
            await pilot.press("ctrl+a", "ctrl+k")
            await paste(pilot, str(saved))
            await pilot.press("enter")
            await wait_for(pilot, saved.exists, 10, "the saved file")
            assert not app.dirty

            # Edit, then reopen the file: asked first, then the saved values are back.
            await pilot.press("m")
            await set_field(pilot, "model.n_embd", "64")
            assert app.dirty
            await pilot.press("ctrl+o")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10,
                           "the discard question")
            await pilot.press("y")
            await wait_for(pilot, lambda: isinstance(app.screen, PathPickerScreen), 10,
                           "the open dialog")
            await paste(pilot, str(saved))
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.session.model.n_embd == 32, 10, "the reopen")
            reopened = load_session(saved)
            assert app.session == reopened
            assert (reopened.data.corpus, reopened.model.n_embd, reopened.model.n_layer,
                    reopened.train.batch_size) == ("sample:synthetic", 32, 1, 16)
            # the live edit stayed in the run (run.json, metrics): not in the session
            assert reopened.optim.lr == pytest.approx(old_lr)
            assert not app.dirty
            await app.client.shutdown()

    run(scenario())


def test_quit_during_training_asks_and_stop_leaves_no_process(tmp_path: Path) -> None:
    """ctrl+q while a job this app started trains asks: leave it / stop it / cancel. Stop
    saves a checkpoint and ends the job's process before the app exits."""
    session = small_session(tmp_path)

    async def scenario() -> int:
        app = LlmlabApp(session, tmp_path / "tiny.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            await wait_for(pilot, lambda: len(app.train_pane.history.train_loss) >= 2, 90,
                           "training steps")
            pid = app.training.launched.pid
            assert _pid_alive(pid)
            await pilot.press("ctrl+q")
            await wait_for(pilot, lambda: isinstance(app.screen, QuitJobScreen), 10,
                           "the quit question")
            await wait_for_screen(pilot, "leave it training")
            await pilot.press("escape")  # cancel: nothing happens
            await wait_for(pilot, lambda: not isinstance(app.screen, QuitJobScreen), 10,
                           "the question gone")
            assert app.training.busy and _pid_alive(pid)
            await pilot.press("ctrl+q")
            await wait_for(pilot, lambda: isinstance(app.screen, QuitJobScreen), 10,
                           "the quit question")
            await pilot.press("s")
            await wait_for(pilot, lambda: app.return_code is not None, 90, "the app to exit")
        assert not app.client.alive
        run_dir = Path(app.training.run_dir)
        assert list((run_dir / "checkpoints").glob("step-*")), "no checkpoint on quit"
        info = json.loads((run_dir / "run.json").read_text())
        assert info["status"] == "stopped"
        return pid

    pid = asyncio.run(scenario())
    assert not _pid_alive(pid)


# --------------------------------------------------------------------------- problems


def test_broken_corpus_and_invalid_field_show_messages_app_stays_up(
        tmp_path: Path, fake_factory) -> None:
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    session = small_session(tmp_path)

    async def scenario() -> None:
        app = LlmlabApp(session, None, engine_factory=fake_factory)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.corpus is not None, 30, "the corpus")
            # A missing file, typed into the corpus path.
            await pilot.press("tab", "tab")
            missing = tmp_path / "missing [b]1[/b].txt"  # (a name is shown, never markup)
            await paste(pilot, str(missing))
            await pilot.press("enter")
            pane = app.dataset_pane
            await wait_for(pilot, lambda: "no such file or folder" in (pane.error or ""),
                           30, "the missing-file error")
            assert pane.error == f"{missing}: no such file or folder"
            await wait_for_screen(pilot, "[b]1[/b].txt: no such file or folder")
            await wait_for(pilot, lambda: app.corpus is None, 5, "the app to forget the corpus")
            # A binary file, chosen in the file picker: core's one-line error, inline.
            await pilot.press("escape", "b")
            await wait_for(pilot, lambda: isinstance(app.screen, PathPickerScreen), 5,
                           "the corpus picker")
            await paste(pilot, str(binary))
            await pilot.press("enter")
            await wait_for(pilot, lambda: "binary file, not text" in (pane.error or ""), 30,
                           "the binary-file error")
            await wait_for_screen(pilot, "✗")
            # Back to a good corpus: stats again; the word tokenizer has an unknown rate.
            await pilot.press("escape", "tab", "enter", "home", "down", "down", "enter")
            await wait_for(pilot, lambda: app.corpus is not None, 30, "a good corpus again")
            await pilot.press("tab", "tab", "enter", "down", "enter")  # tokenizer: word
            await wait_for(pilot, lambda: app.corpus is not None
                           and app.corpus.stats.tokenizer == "word", 30, "word tokens")
            assert app.corpus.stats.unk_rate is not None
            await pilot.press("escape")

            # An invalid field: the validator's message next to it; start refuses.
            await pilot.press("m")
            await set_field(pilot, "model.n_head", "5")
            await wait_for_screen(pilot, "must divide model.n_embd (32 % 5 != 0)")
            await set_field(pilot, "optim.lr", "fast")
            await wait_for_screen(pilot, "must be a number (got 'fast')")
            await pilot.press("escape", "s")
            assert any("cannot start training: 2 problems" in n for n in notifications(app))
            assert not app.training.busy
            await pilot.press("ctrl+s")
            assert not isinstance(app.screen, PathPickerScreen)  # no save while invalid
            # Fixing them makes the session valid again, and the app still answers keys.
            await set_field(pilot, "model.n_head", "4")
            await set_field(pilot, "optim.lr", "0.002")
            assert app.problem_lines == []
            # Numbers nudge: + doubles a size, - halves it (the arrows move between fields).
            await pilot.press("plus")  # lr 0.002 -> 0.004 (a rate doubles too)
            assert app.session.optim.lr == pytest.approx(0.004)
            await set_field(pilot, "model.n_embd", "32")
            await pilot.press("plus")
            assert app.session.model.n_embd == 64
            await pilot.press("minus", "minus")
            assert app.session.model.n_embd == 16
            await pilot.press("escape", "t")
            assert app.current_pane == "train"

    run(scenario())


def test_engine_error_is_a_notification_and_the_app_keeps_working(tmp_path: Path,
                                                                  fake_engines) -> None:
    from helpers.tui import FakeEngine

    from core import messages as msg

    def script(command: msg.Command) -> list[msg.Event]:
        if isinstance(command, msg.Start):
            return [msg.Status("preparing"),
                    msg.Error("out of memory: try a smaller train.batch_size"),
                    msg.Status("failed", "out of memory")]
        return []

    def factory(session):
        engine = FakeEngine(session, script)
        fake_engines.append(engine)
        return engine

    async def scenario() -> None:
        app = LlmlabApp(small_session(tmp_path), None, engine_factory=factory)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            await wait_for(pilot, lambda: app.training.state == "failed", 10, "the failure")
            assert any("out of memory" in n for n in notifications(app))
            assert any("out of memory" in line for line in app.train_pane.event_log.texts)
            await pilot.press("d")
            assert app.current_pane == "dataset"
            await pilot.press("s")  # a new start is allowed after a failure
            await wait_for(pilot, lambda: len(fake_engines[-1].sent) >= 2 or
                           len(fake_engines) == 2, 10, "a second start")

    run(scenario())


# --------------------------------------------------------------------------- scripted engine


def test_train_keys_send_commands_and_plots_follow_events(tmp_path: Path, fake_factory,
                                                          fake_engines) -> None:
    from core import messages as msg

    async def scenario() -> None:
        app = LlmlabApp(small_session(tmp_path), None, engine_factory=fake_factory)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            pane = app.train_pane
            await wait_for(pilot, lambda: len(pane.history.train_loss) == 60, 10, "events")
            data = pane.plot_data()
            assert len(data["loss"].series) == 3  # raw, smoothed, val
            assert data["acc"].series[0].values[-1] == pytest.approx(0.6)
            assert data["loss"].markers == [30.0]
            await pilot.press("space")
            await pilot.press("left_square_bracket")
            engine = fake_engines[-1]
            await wait_for(pilot, lambda: any(isinstance(c, msg.SetHparam) for c in engine.sent),
                           5, "SetHparam")
            lr_cmd = [c for c in engine.sent if isinstance(c, msg.SetHparam)][0]
            # the run doubled its lr at step 30 (2e-3): halving gives 1e-3
            assert lr_cmd.name == "optim.lr" and lr_cmd.value == pytest.approx(1e-3)
            assert app.live["optim.lr"] == pytest.approx(1e-3)
            # the edit dialog: weight decay
            await pilot.press("e")
            await wait_for(pilot, lambda: app.screen.__class__.__name__ == "HparamEditScreen",
                           5, "the edit dialog")
            await pilot.press("enter", "down", "enter")  # the list: lr -> weight decay
            await pilot.press("ctrl+a", "ctrl+k")
            await type_text(pilot, "0.05")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.live["optim.weight_decay"] == 0.05, 5, "wd")
            # run-time changes stay in the run: the session is not edited
            assert app.session.optim.weight_decay == 0.1 and not app.dirty
            assert any(isinstance(c, msg.SetHparam) and c.name == "optim.weight_decay"
                       and c.value == 0.05 for c in engine.sent)
            await pilot.press("x")
            await wait_for(pilot, lambda: app.training.state == "stopped", 5, "stop")
            assert [type(c).__name__ for c in engine.sent][:3] == ["Start", "Pause",
                                                                  "SetHparam"]

    run(scenario())


def test_plots_changed_while_another_pane_showed_are_drawn_when_train_shows(
        tmp_path: Path, fake_factory) -> None:
    """The plots are redrawn when something changed (a one-shot timer, nothing ticking while
    idle), and what came while another pane showed is drawn as the Train pane comes back."""
    from core import messages as msg

    async def scenario() -> None:
        app = LlmlabApp(small_session(tmp_path), None, engine_factory=fake_factory)
        async with app.run_test(size=SIZE) as pilot:
            pane = app.train_pane
            plot = pane.query_one("#plot-loss")
            await pilot.press("s")
            await wait_for(pilot, lambda: len(pane.history.train_loss) == 60, 10, "events")
            await wait_for(pilot, lambda: plot.data == pane.plot_data()["loss"], 5,
                           "the curves drawn")
            await pilot.press("d")  # the Dataset pane shows while more steps come
            await wait_for(pilot, lambda: not pane.display, 5, "the Dataset pane")
            for step in (61, 62):
                app.training.deliver(msg.StepMetrics(
                    step=step, tokens=256 * step, loss=1.2, lr=1e-3, grad_norm=1.0,
                    tokens_per_s=25600.0, mfu=0.0125, elapsed=step * 0.01, max_steps=100))
            await wait_for(pilot, lambda: len(pane.history.train_loss) == 62, 5, "two more")
            await pilot.pause(0.4)
            assert len(plot.data.series[0].steps) == 60  # (hidden: not drawn)
            await pilot.press("t")
            await wait_for(pilot, lambda: plot.data == pane.plot_data()["loss"], 5,
                           "the new steps drawn")
            assert plot.data.series[0].steps[-1] == 62

    run(scenario())


def test_help_palette_theme_and_keymap(tmp_path: Path, config_dir: Path,
                                       fake_factory, fake_engines) -> None:
    (config_dir / "keymap.toml").write_text('[train]\nstart = "f5"\n')

    async def scenario() -> None:
        app = LlmlabApp(small_session(tmp_path), None, engine_factory=fake_factory)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), 5, "help")
            await wait_for_screen(pilot, "Start a new run")
            assert "f5" in screen_text(app)
            await pilot.press("escape")
            # the palette reaches a theme, and it is remembered
            await pilot.press("ctrl+p")
            await paste(pilot, "Theme: llmlab-light")
            await wait_for(pilot, lambda: _palette_has(app, "Theme: llmlab-light"), 5,
                           "the theme in the palette")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.theme == "llmlab-light", 5, "the theme")
            await wait_for(pilot, lambda: (config_dir / "settings.toml").exists(), 5,
                           "settings")
            # the user's key starts training; the default key does not
            await pilot.press("s")
            await pilot.pause()
            assert not fake_engines
            await pilot.press("f5")
            await wait_for(pilot, lambda: fake_engines, 5, "a start by f5")
            # resizing relayouts
            await pilot.resize_terminal(120, 40)
            await pilot.pause()
            await pilot.resize_terminal(*SIZE)
            await pilot.pause()

    run(scenario())
    assert "llmlab-light" in (config_dir / "settings.toml").read_text()

    async def again() -> None:
        app = LlmlabApp(small_session(tmp_path), None)
        async with app.run_test(size=SIZE):
            assert app.theme == "llmlab-light"

    run(again())


def test_save_never_writes_into_the_package(tmp_path: Path) -> None:
    from core.samples import default_session_path

    async def scenario() -> None:
        app = LlmlabApp(small_session(tmp_path), default_session_path())
        assert is_shipped(app.session_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: isinstance(app.screen, PathPickerScreen), 5,
                           "the save dialog")
            await pilot.press("ctrl+a", "ctrl+k")
            await paste(pilot, str(default_session_path()))
            await pilot.press("enter")
            await wait_for_screen(pilot, "inside the llmlab package")
            await pilot.press("ctrl+a", "ctrl+k")
            await paste(pilot, str(tmp_path / "mine"))
            await pilot.press("enter")
            await wait_for(pilot, lambda: (tmp_path / "mine.toml").exists(), 5, "the file")
            assert app.session_path == tmp_path / "mine.toml"

    run(scenario())


def test_a_session_with_a_corpus_file_opens_with_the_keys_working(tmp_path: Path) -> None:
    """The first key goes to the app, not into the corpus path field (whose Select, on
    mount, once took the focus to it)."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a small corpus of words\n" * 50, encoding="utf-8")
    session = small_session(tmp_path)
    session.data.corpus = str(corpus)

    async def scenario() -> None:
        app = LlmlabApp(session, None)
        async with app.run_test(size=SIZE) as pilot:
            assert app.focused is None or app.focused.id != "corpus-path"
            await pilot.press("t")
            assert app.current_pane == "train"
            assert app.query_one("#corpus-path").value == str(corpus)
            assert app.session.data.corpus == str(corpus)

    run(scenario())


def test_a_load_under_way_follows_the_model_into_a_new_engine(tmp_path: Path, fake_factory,
                                                               fake_engines) -> None:
    """A training with an edited session takes a fresh engine: a model that was loading in
    the old one is asked of the new one (not left "loading" for ever)."""

    async def scenario() -> None:
        app = LlmlabApp(small_session(tmp_path), None, engine_factory=fake_factory)
        async with app.run_test(size=SIZE) as pilot:
            app.load_model("runs/tiny/run-0")  # the scripted engine never answers it
            assert app.model_loading == "runs/tiny/run-0"
            app.session.model.n_embd = 64  # another session: Start needs a fresh engine
            await pilot.press("s")
            await wait_for(pilot, lambda: len(fake_engines) == 2, 10, "the new engine")
            assert [type(c).__name__ for c in fake_engines[1].sent] == ["Start", "LoadRun"]
            assert fake_engines[1].sent[1].path == "runs/tiny/run-0"
            assert app.model_loading == "runs/tiny/run-0"

    run(scenario())


def test_the_train_pane_shows_an_idle_edit_of_a_live_hyperparameter(tmp_path: Path) -> None:
    from tui.widgets.hparam_line import HparamLine

    async def scenario() -> None:
        app = LlmlabApp(small_session(tmp_path), None)
        async with app.run_test(size=SIZE) as pilot:
            app.edit("optim.lr", 0.0042)
            await pilot.pause()
            assert app.query_one(HparamLine).hparams["optim.lr"] == 0.0042

    run(scenario())


def test_the_live_edit_dialog_keeps_a_bad_value_with_its_problem(tmp_path: Path) -> None:
    from tui.screens.hparam_edit import HparamEditScreen

    async def scenario() -> None:
        app = LlmlabApp(small_session(tmp_path), None)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("t", "e")
            await wait_for(pilot, lambda: isinstance(app.screen, HparamEditScreen), 5,
                           "the edit dialog")
            lr = app.session.optim.lr
            await pilot.press("down")  # from the parameter (lr) to its value
            await pilot.press("ctrl+a", "ctrl+k")
            await type_text(pilot, "-1")
            await pilot.press("enter")
            assert isinstance(app.screen, HparamEditScreen)  # still open, text kept
            assert app.screen.query_one("#hparam-value").value == "-1"
            await wait_for_screen(pilot, "optim.lr:")
            assert app.session.optim.lr == lr and not app.problem_lines
            await pilot.press("ctrl+a", "ctrl+k")
            await type_text(pilot, "0.002")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.session.optim.lr == 0.002, 5, "the new lr")

    run(scenario())
