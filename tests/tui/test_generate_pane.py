"""The Generate pane, driven by keys: prompt and sampling controls, streamed text, stop, the
dense and compressed models side by side, the session's [generate] values, Chinese text, an
lstm, and an 80x24 snapshot.

The real engine serves in a thread (`thread_factory`) for everything a model must answer; the
snapshot plays a scripted engine so that nothing speed-dependent is on screen.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from helpers.tui import (
    FakeEngine,
    paste,
    small_session,
    sync,
    train_tiny_run,
    type_text,
    wait_for,
)
from rich.cells import cell_len

from core import messages as msg
from core.session import Session, load_session
from core.values import ModelFigures
from tui.app import LlmlabApp
from tui.messages import EngineRequest, LoadModelRequest, SessionEdited
from tui.panes.generate import GeneratePane

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SIZE = (80, 24)


def pane_of(app: LlmlabApp) -> GeneratePane:
    return app.query_one(GeneratePane)


def screen(app: LlmlabApp) -> str:
    from helpers.tui import screen_text

    return screen_text(app)


def reference(run_dir: Path, prompt: str, **sampling) -> str:
    """What `llmlab sample` prints after the prompt for these settings: the same core
    function on the run's best checkpoint (the workbench loads that one too)."""
    from core.generate import Sampling, generate_text
    from core.inference import load_run

    run = load_run(run_dir)
    return "".join(generate_text(run.model, run.tokenizer, prompt, Sampling(**sampling)))


async def open_pane(pilot, app: LlmlabApp) -> GeneratePane:
    """g, then wait for the newest run of the session, which the app loads by itself."""
    await pilot.press("g")
    pane = pane_of(app)
    await wait_for(pilot, lambda: pane.loaded is not None and app.model_source, 60,
                   "the model to load")
    return pane


async def load_scripted(pilot, app: LlmlabApp) -> GeneratePane:
    """g, then the scripted model loaded, as the Runs pane's open loads it."""
    await pilot.press("g")
    app.post_message(LoadModelRequest("runs/tiny/run-1"))
    pane = pane_of(app)
    await wait_for(pilot, lambda: pane.loaded is not None and app.model_source, 10,
                   "the scripted model")
    return pane


async def set_number(pilot, value: str) -> None:
    """In a focused number field: replace its text, commit with enter."""
    await pilot.press("ctrl+a", "ctrl+k")
    await type_text(pilot, value)
    await pilot.press("enter")


async def replace_text(pilot, value: str) -> None:
    await pilot.press("ctrl+a", "ctrl+k")
    await type_text(pilot, value)


async def settings_by_keys(pilot, prompt: str, temperature: str, max_tokens: str,
                           seed: str) -> None:
    """e edits the prompt, tab walks the controls (temp, top-k, top-p, max, seed); leaving
    a field commits it (enter would also generate)."""
    await pilot.press("e")
    await replace_text(pilot, prompt)
    await pilot.press("tab")
    await replace_text(pilot, temperature)
    await pilot.press("tab", "tab", "tab")
    await replace_text(pilot, max_tokens)
    await pilot.press("tab")
    await replace_text(pilot, seed)
    await pilot.press("escape")


# --------------------------------------------------------------------------- real engine


@sync
async def test_generated_text_is_the_clis(trained, thread_factory) -> None:
    session, run_dir = trained
    app = LlmlabApp(copy.deepcopy(session), None, engine_factory=thread_factory)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_pane(pilot, app)
        assert "step 60" in screen(app) and "gpt" in screen(app)
        await settings_by_keys(pilot, "jojo", "0.7", "40", "7")
        assert app.focused is pane
        await pilot.press("n")
        await wait_for(pilot, lambda: pane.done, 60, "the generation")
        await pilot.pause()
        column = pane.column("dense")
        expected = reference(run_dir, "jojo", max_tokens=40, temperature=0.7, seed=7)
        assert column.prompt == "jojo"
        assert column.text == expected
        assert column.tokens == 40 and column.state == "done"
        assert pane.tokens_per_s["dense"] > 0
        sent = [c for c in app.client.engine.sent if isinstance(c, msg.Generate)]
        assert [(c.temperature, c.max_tokens, c.seed, c.model) for c in sent] == [
            (0.7, 40, 7, "dense")]
        text = screen(app)
        assert ("jojo" + expected)[:30] in text.replace("\n", "")
        assert "40 tok" in text and "done" in text
        g = app.session.generate
        assert (g.prompt, g.temperature, g.max_tokens, g.seed) == ("jojo", 0.7, 40, 7)

        # enter in the prompt generates too; the same seed gives the same text again
        await pilot.press("e", "enter")
        await wait_for(pilot, lambda: pane.generations_done == 2, 60, "the second generation")
        assert pane.column("dense").text == expected


@sync
async def test_stop_mid_way(trained, thread_factory) -> None:
    session, _ = trained
    session = copy.deepcopy(session)
    session.generate.max_tokens = 50_000
    app = LlmlabApp(session, None, engine_factory=thread_factory)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_pane(pilot, app)
        await pilot.press("n")
        column = pane.column("dense")
        await wait_for(pilot, lambda: column.tokens > 0, 60, "the first tokens")
        assert pane.generating and "generating" in screen(app)
        await pilot.press("c")
        await wait_for(pilot, lambda: pane.done, 60, "the generation to stop")
        await pilot.pause()
        assert 0 < column.tokens < 50_000
        assert column.state == "stopped"
        assert "stopped" in screen(app)
        sent = app.client.engine.sent  # the Cancel named the generation it stops
        generate = [c for c in sent if isinstance(c, msg.Generate)][-1]
        assert [c.target for c in sent if isinstance(c, msg.Cancel)] == [generate.request_id]
        # c with nothing under way says so, and sends nothing
        cancels = sum(isinstance(c, msg.Cancel) for c in app.client.engine.sent)
        await pilot.press("c")
        assert sum(isinstance(c, msg.Cancel) for c in app.client.engine.sent) == cancels


@sync
async def test_side_by_side(trained, thread_factory) -> None:
    session, run_dir = trained
    session = copy.deepcopy(session)
    session.generate.max_tokens = 30
    session.generate.prompt = "jo"
    app = LlmlabApp(session, None, engine_factory=thread_factory)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_pane(pilot, app)
        await pilot.press("v")
        # no compressed model yet: the dense column fills, the compressed one says why not
        await pilot.press("n")
        await wait_for(pilot, lambda: not pane.generating, 60, "both requests")
        await pilot.pause()
        assert pane.column("dense").state == "done"
        compressed = pane.column("compressed")
        assert compressed.state == "failed"
        assert "nothing to generate from" in compressed.message
        assert "nothing to generate from" in screen(app)

        app.post_message(EngineRequest(msg.PruneTo("magnitude", 0.5)))
        await pilot.press("n")
        await wait_for(pilot, lambda: pane.generations_done == 3, 60, "both columns")
        await pilot.pause()
        dense = pane.column("dense")
        assert dense.state == compressed.state == "done"
        assert dense.text == reference(run_dir, "jo", max_tokens=30, seed=0, temperature=0.8)
        assert compressed.text and compressed.tokens == 30
        assert compressed.label == "magnitude 50%"
        assert set(pane.tokens_per_s) == {"dense", "compressed"}
        generates = [c for c in app.client.engine.sent if isinstance(c, msg.Generate)][-2:]
        assert [c.model for c in generates] == ["dense", "compressed"]
        assert generates[0].request_id != generates[1].request_id
        assert generates[0].seed == generates[1].seed and generates[0].prompt == "jo"
        text = screen(app)
        assert "dense" in text and "compressed (magnitude 50%)" in text
        assert text.count("30 tok") == 2

        # o chooses the model when side by side is off again
        await pilot.press("v", "o")
        assert pane.model == "compressed" and not pane.column("dense").display
        await pilot.press("n")
        await wait_for(pilot, lambda: pane.generations_done == 4, 60, "the compressed one")
        assert [c.model for c in app.client.engine.sent
                if isinstance(c, msg.Generate)][-1] == "compressed"


@sync
async def test_chinese_text_wraps_by_cell_width(tmp_path: Path, thread_factory) -> None:
    run_dir = train_tiny_run(tmp_path, corpus="sample:zh-tales")
    app = LlmlabApp(small_session(tmp_path), None, engine_factory=thread_factory)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_pane(pilot, app)
        app.post_message(EngineRequest(msg.PruneTo("magnitude", 0.3)))
        await pilot.press("e", "ctrl+a", "ctrl+k")
        await paste(pilot, "小鹿")
        assert pane.prompt_input.value == "小鹿"
        await pilot.press("tab", "tab", "tab", "tab")
        await replace_text(pilot, "60")  # (leaving commits; enter would generate)
        await pilot.press("escape", "v", "n")
        await wait_for(pilot, lambda: pane.generations_done == 2, 60, "both columns")
        await pilot.pause()
        dense = pane.column("dense")
        expected = reference(run_dir, "小鹿", max_tokens=60, temperature=0.8)
        assert dense.text == expected
        assert any("\u4e00" <= ch <= "\u9fff" for ch in expected)
        lines = screen(app).splitlines()
        figures = next(i for i, line in enumerate(lines) if "tok/s" in line)
        body = [line for line in lines[figures + 1:-1] if "▏" in line]
        assert body, "two columns on screen"
        # every row puts the column separator in the same cell: each CJK character
        # counts as two cells, and none is cut at the column's edge
        assert len({cell_len(line[:line.index("▏")]) for line in body}) == 1
        left = "".join(line[:line.index("▏")] for line in body)
        shown = "".join(left.split())
        assert shown == "".join(("小鹿" + expected).split())
        assert len(body) >= 4  # 62 characters, 124 cells, wrapped into 37-cell rows


@pytest.mark.parametrize("arch", ["lstm", "gru", "mlp"])
@sync
async def test_every_model_family(tmp_path: Path, thread_factory, arch: str) -> None:
    run_dir = train_tiny_run(tmp_path, arch=arch)
    session = small_session(tmp_path)
    session.generate.prompt, session.generate.max_tokens, session.generate.seed = "jo", 25, 3
    app = LlmlabApp(session, None, engine_factory=thread_factory)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_pane(pilot, app)
        assert arch in screen(app)
        await pilot.press("n")
        await wait_for(pilot, lambda: pane.done, 60, "the generation")
        assert pane.column("dense").text == reference(run_dir, "jo", max_tokens=25, seed=3)


@sync
async def test_chinese_words_with_jieba(tmp_path: Path, thread_factory) -> None:
    run_dir = train_tiny_run(tmp_path, corpus="sample:zh-tales", tokenizer="jieba")
    app = LlmlabApp(small_session(tmp_path), None, engine_factory=thread_factory)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_pane(pilot, app)
        await pilot.press("e", "ctrl+a", "ctrl+k")
        await paste(pilot, "小鹿")
        await pilot.press("tab", "tab", "tab", "tab")
        await replace_text(pilot, "12")
        await pilot.press("escape", "n")
        await wait_for(pilot, lambda: pane.done, 60, "the generation")
        expected = reference(run_dir, "小鹿", max_tokens=12, temperature=0.8)
        assert pane.column("dense").text == expected
        assert any("\u4e00" <= ch <= "\u9fff" for ch in expected)
        assert "".join(expected.split())[:6] in "".join(screen(app).split())


# --------------------------------------------------------------------------- scripted engine

def _figures() -> ModelFigures:
    return ModelFigures("dense", 13952, 13952, 0.0, 55808, 1.21, 3.35, 0.61, 0.93, 1.5)


STORY = (" upon a time there was a little fox who lived by the river. "
         "小狐狸住在河边，每天早上去看太阳。 She liked to watch the boats go by.")


def script(command: msg.Command) -> list[msg.Event]:
    """LoadRun: a fixed model; Generate: the story in pieces of 8 characters at 512 tok/s."""
    if isinstance(command, msg.LoadRun):
        return [msg.ModelLoaded(command.path, "gpt", 60, 17, 32, _figures())]
    if isinstance(command, msg.Generate):
        text = STORY[: command.max_tokens]
        pieces = [text[i:i + 8] for i in range(0, len(text), 8)]
        return [msg.Generated(piece, min(8 * (i + 1), len(text)), 512.0,
                              done=i == len(pieces) - 1, model=command.model,
                              request_id=command.request_id)
                for i, piece in enumerate(pieces)]
    return []


def scripted_app(tmp_path: Path, engines: list[FakeEngine] | None = None,
                 session: Session | None = None) -> LlmlabApp:
    engines = [] if engines is None else engines

    def factory(s: Session) -> FakeEngine:
        engines.append(FakeEngine(s, script))
        return engines[-1]

    return LlmlabApp(session or small_session(tmp_path), None, engine_factory=factory)


@sync
async def test_enter_in_a_sampling_control_generates(tmp_path: Path) -> None:
    """Enter in temperature only committed it; only the prompt's enter generated."""
    engines: list[FakeEngine] = []
    app = scripted_app(tmp_path, engines)
    async with app.run_test(size=SIZE) as pilot:
        await load_scripted(pilot, app)
        await pilot.press("e", "tab")  # the prompt, then temperature
        await set_number(pilot, "0.5")
        await wait_for(pilot, lambda: any(isinstance(c, msg.Generate) for c in engines[0].sent),
                       5, "a Generate")
        (sent,) = [c for c in engines[0].sent if isinstance(c, msg.Generate)]
        assert sent.temperature == 0.5 and app.session.generate.temperature == 0.5
        assert app.focused is pane_of(app)  # single keys again: c stops it


@sync
async def test_another_model_clears_the_previous_models_text(tmp_path: Path) -> None:
    """The pane kept the previous model's text under the new model's name."""
    app = scripted_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await load_scripted(pilot, app)
        await pilot.press("n")
        await wait_for(pilot, lambda: pane.done, 10, "the generation")
        assert "little fox" in screen(app)
        app.post_message(LoadModelRequest("runs/tiny/run-2"))
        await wait_for(pilot, lambda: app.model_source == "runs/tiny/run-2", 10, "run-2")
        await pilot.pause()
        assert pane.column("dense").text == "" and "little fox" not in screen(app)
        assert "run-2" in screen(app)


@sync
async def test_no_model_says_how_to_get_one(tmp_path: Path) -> None:
    engines: list[FakeEngine] = []
    app = scripted_app(tmp_path, engines)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("g")
        await pilot.pause()
        text = screen(app)
        assert "no model loaded" in text.lower()
        assert "train one (s)" in text and "Runs (r, then o)" in text
        await pilot.press("n")
        assert not any(isinstance(c, msg.Generate) for e in engines for c in e.sent)


@sync
async def test_session_values_by_keys_and_restored(tmp_path: Path) -> None:
    engines: list[FakeEngine] = []
    app = scripted_app(tmp_path, engines)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("g")
        pane = pane_of(app)
        await settings_by_keys(pilot, "a fox", "1.3", "64", "11")
        g = app.session.generate
        assert (g.prompt, g.temperature, g.max_tokens, g.seed) == ("a fox", 1.3, 64, 11)
        # a nudge commits too: + in top-k
        await pilot.press("e", "tab", "tab", "plus")
        assert app.session.generate.top_k == 1
        # a bad value: one line, not in the session, and n sends nothing
        await pilot.press("tab")
        await set_number(pilot, "1.5")
        await pilot.press("escape")
        assert app.session.generate.top_p == 1.0
        problem = "generate.top_p: must be in (0.0, 1.0] (got 1.5)"
        assert problem in screen(app)
        app.post_message(LoadModelRequest("runs/tiny/run-1"))
        await wait_for(pilot, lambda: app.model_source, 10, "the scripted model")
        await pilot.press("n")
        await pilot.pause()
        assert not any(isinstance(c, msg.Generate) for c in engines[0].sent)
        await pilot.press("e", "tab", "tab", "tab")
        await set_number(pilot, "0.9")
        await pilot.press("escape")
        assert problem not in screen(app) and app.session.generate.top_p == 0.9

        # saved, then opened again: the controls show the file's values, echoing nothing
        path = tmp_path / "gen.toml"
        assert app.write_session(path)
        saved = load_session(path)
        assert (saved.generate.temperature, saved.generate.top_k, saved.generate.top_p,
                saved.generate.max_tokens, saved.generate.seed, saved.generate.prompt) == (
            1.3, 1, 0.9, 64, 11, "a fox")
        other = copy.deepcopy(saved)
        other.generate.temperature, other.generate.seed = 0.25, 99
        other.generate.prompt = "two\nlines"
        echoes: list[SessionEdited] = []
        for widget in (pane, pane.controls):
            post = widget.post_message

            def record(message, post=post):
                if isinstance(message, SessionEdited):
                    echoes.append(message)
                return post(message)

            widget.post_message = record  # type: ignore[method-assign]
        app.open_session(other, tmp_path / "other.toml")
        await pilot.pause()
        assert echoes == []
        assert not app.dirty
        assert pane.controls.editor("temperature").value == "0.25"
        assert pane.controls.editor("seed").value == "99"
        assert pane.prompt_input.value == "two\\nlines"
        assert pane.prompt_input.prompt == "two\nlines"


@sync
async def test_stale_requests_and_palette(tmp_path: Path) -> None:
    app = scripted_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await load_scripted(pilot, app)
        titles = [c.title for c in pane.palette_commands()]
        assert titles == ["Generate: generate", "Generate: stop",
                          "Generate: side by side on/off", "Generate: model dense/compressed"]
        # an event of an id this pane never asked for changes nothing
        pane.post_message(_generated(999, "zzz"))
        await pilot.pause()
        assert pane.column("dense").text == "" and pane.generations_done == 0
        # the palette reaches the commands by name
        await pilot.press("ctrl+p")
        await paste(pilot, "Generate: side by side")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: pane.side_by_side, 10, "side by side from the palette")
        await pilot.press("n")
        await wait_for(pilot, lambda: pane.generations_done == 2, 10, "both columns")
        assert pane.column("dense").text == pane.column("compressed").text == STORY[:200]
        assert pane.tokens_per_s == {"dense": 512.0, "compressed": 512.0}


@sync
async def test_stop_after_the_engine_was_replaced(tmp_path: Path) -> None:
    """A training started with an edited session replaces the engine, and the generation
    under way ends with it: c then stops it here at once, waiting for no answer."""
    engines: list[FakeEngine] = []

    def silent(command: msg.Command) -> list[msg.Event]:
        if isinstance(command, msg.Generate):
            return []  # (it never answers)
        if isinstance(command, msg.Start):
            return [msg.Status("preparing")]
        return script(command)

    def factory(s: Session) -> FakeEngine:
        engines.append(FakeEngine(s, silent))
        return engines[-1]

    app = LlmlabApp(small_session(tmp_path), None, engine_factory=factory)
    async with app.run_test(size=SIZE) as pilot:
        pane = await load_scripted(pilot, app)
        await pilot.press("e")
        await type_text(pilot, "fox")
        await pilot.press("enter")
        await wait_for(pilot, lambda: any(isinstance(c, msg.Generate) for c in engines[0].sent),
                       10, "the request")
        await pilot.press("s")
        await wait_for(pilot, lambda: len(engines) == 2, 10, "a fresh engine for the run")
        await pilot.press("g", "c")
        assert not pane.generating and pane.column("dense").state == "stopped"
        assert not any(isinstance(c, msg.Cancel) for c in engines[1].sent)


@sync
async def test_a_generation_never_lays_the_screen_out_again(tmp_path: Path, monkeypatch) -> None:
    """A screen layout costs the app more than a frame and the engine generating beside it
    pays (bench/ui.py): from `n` to done, text growing past the column's height and a header
    changing state, the pane draws without one, and still shows the text's end."""
    from textual.screen import Screen

    lines = [f"line {i} of the story" for i in range(60)]

    def long_story(command: msg.Command) -> list[msg.Event]:
        if isinstance(command, msg.Generate):
            return [msg.Generated(line + "\n", i + 1, 300.0, done=i == len(lines) - 1,
                                  model=command.model, request_id=command.request_id)
                    for i, line in enumerate(lines)]
        return script(command)

    def factory(s: Session) -> FakeEngine:
        return FakeEngine(s, long_story)

    app = LlmlabApp(small_session(tmp_path), None, engine_factory=factory)
    async with app.run_test(size=SIZE) as pilot:
        pane = await load_scripted(pilot, app)
        await pilot.press("n")  # a first one: from the hint to text may lay out
        await wait_for(pilot, lambda: pane.done, 10, "the first generation")
        await pilot.pause()
        layouts: list[bool] = []
        real = Screen._refresh_layout

        def counted(self, *args, **kwargs):
            layouts.append(kwargs.get("scroll", False))
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Screen, "_refresh_layout", counted)
        await pilot.press("n")
        await wait_for(pilot, lambda: pane.done and "line 59" in screen(app), 10,
                       "the second generation")
        await pilot.pause()
        assert [scroll for scroll in layouts if not scroll] == []
        assert "line 59 of the story" in screen(app) and "line 30 " not in screen(app)


def _generated(request_id: int, text: str):
    from tui.messages import EngineEvent

    return EngineEvent(msg.Generated(text, 3, 1.0, done=True, request_id=request_id))


def test_snapshot_after_a_generation(snap_compare, tmp_path: Path) -> None:
    session = small_session(tmp_path)
    session.generate.max_tokens = 140
    app = scripted_app(tmp_path, session=session)

    async def run_before(pilot) -> None:
        pane = await load_scripted(pilot, app)
        await pilot.press("e")
        await type_text(pilot, "Once")
        await pilot.press("enter")
        await wait_for(pilot, lambda: pane.done, 10, "the scripted generation")
        app.clear_notifications()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
