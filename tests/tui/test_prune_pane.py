"""The Prune pane driven by keys, as a user drives it (80x24).

The real engine, served in a thread (`thread_factory`), prunes the tiny GPT of the `trained`
fixture; a scripted workbench (fixed numbers, answers held back on demand) checks what needs
a deterministic engine: coalescing the slider's requests, cancelling, errors, the snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from helpers.tui import (
    FakeEngine,
    _palette_has,
    notifications,
    paste,
    screen_text,
    shows,
    small_session,
    wait_for,
    wait_for_screen,
)
from textual_slider import Slider

from core import messages as msg
from core.prune import sparsity_report
from core.session import Session, load_session
from core.values import ModelFigures
from tui.app import LlmlabApp
from tui.messages import LoadModelRequest
from tui.panes.prune import PrunePane
from tui.screens.path_picker import PathPickerScreen
from tui.text import sparkline
from tui.widgets.prune_layers import bar, short_name
from tui.widgets.prune_table import PruneTable, compact_count, human_bytes, table_cells

SIZE = (80, 24)


def run(coro) -> None:
    asyncio.run(coro)



def pane_of(app: LlmlabApp) -> PrunePane:
    return app.query_one(PrunePane)


def sent(engine, kind: type) -> list:
    return [c for c in engine.sent if isinstance(c, kind)]


def checkpoint_hashes(run_dir: Path) -> dict[str, str]:
    """Every file of the run (not the compressed models written into it) by its hash."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*"))
            if p.is_file() and "compressed" not in p.relative_to(run_dir).parts}


def zeros(model) -> int:
    return sum(int((p == 0).sum()) for p in model.parameters())


async def show_loaded(pilot) -> PrunePane:
    """p, then wait for the newest run to be loaded and its sweep to be drawn."""
    await pilot.press("p")
    pane = pane_of(pilot.app)
    await wait_for(pilot, lambda: pane.dense is not None, 60, "the model to load")
    await wait_for(pilot, lambda: not pane.requests.sweeping, 60, "the sweep")
    return pane


@contextlib.asynccontextmanager
async def real_app(session: Session, thread_factory):
    """The app on the real engine (served in a thread), the Prune pane shown with the session's
    newest run loaded and swept: (app, pilot, the pane)."""
    app = LlmlabApp(copy.deepcopy(session), None, engine_factory=thread_factory)
    async with app.run_test(size=SIZE) as pilot:
        yield app, pilot, await show_loaded(pilot)


# --------------------------------------------------------------------------- the real engine


def test_slider_prunes_a_copy_and_the_trained_model_stays_dense(trained, thread_factory,
                                                                thread_engines) -> None:
    session, run_dir = trained
    before = checkpoint_hashes(run_dir)
    assert any(name.endswith(".pt") for name in before), before

    async def main() -> None:
        async with real_app(session, thread_factory) as (app, pilot, pane):
            await wait_for_screen(pilot, run_dir.name)
            text = screen_text(app)
            assert run_dir.name in text and "step 60" in text
            assert "dense" in text and "val loss" in text
            assert len(pane.requests.sweep_points) == 11
            table = app.query_one(PruneTable)
            assert table.column("dense")["sparsity"] == "0.0%"
            workbench = thread_engines[-1].engine.workbench
            dense_zeros = zeros(workbench.model)

            await pilot.press("right", "right")  # the pane's keys move the slider
            await wait_for(pilot, lambda: pane.candidate is not None and not pane.pruning,
                           10, "the candidate")
            assert pane.percent == 10
            assert pane.candidate.label == "magnitude 10%"
            assert table.column("candidate")["sparsity"] == "10.0%"
            loss_10 = pane.candidate.loss

            app.query_one(Slider).focus()  # and so do the slider's own keys
            await pilot.press("right", "right", "right", "right", "right", "right", "right",
                              "right")
            await wait_for(pilot, lambda: pane.candidate.label == "magnitude 50%"
                           and not pane.pruning, 5, "the newest position's loss")
            assert table.column("candidate")["sparsity"] == "50.0%"
            assert table.column("candidate")["val loss"] == f"{pane.candidate.loss:.3f}"
            assert pane.shown_loss == pane.candidate.loss and pane.candidate.loss > loss_10
            await wait_for_screen(pilot, "magnitude 50%")
            # Held keys never queue one evaluation each: at most one per position.
            prunes = sent(thread_engines[-1], msg.PruneTo)
            assert prunes[-1].sparsity == 0.5 and len(prunes) <= 10
            assert pane.measured == len(prunes)
            # The curve shows the candidate at the slider's position.
            data = pane.plot_data()
            assert data.markers == [50.0]
            assert data.series[1].steps == [50.0]

            assert zeros(workbench.model) == dense_zeros
            assert sparsity_report(workbench.model).sparsity == 0.0
            assert sparsity_report(workbench.candidate).sparsity == pytest.approx(0.5, abs=0.02)

    run(main())
    assert checkpoint_hashes(run_dir) == before


def test_quantize_fine_tune_and_write(trained, thread_factory, thread_engines) -> None:
    session, run_dir = trained

    async def main() -> None:
        async with real_app(session, thread_factory) as (app, pilot, pane):
            await pilot.press(*["right"] * 6)
            await wait_for(pilot, lambda: pane.candidate is not None and not pane.pruning
                           and pane.percent == 30 and pane.candidate.label == "magnitude 30%",
                           10, "the candidate at 30%")

            await pilot.press("f")  # compress.finetune_steps is 0: 100 steps
            assert sent(thread_engines[-1], msg.FineTune)[-1].steps == 100
            await wait_for(pilot, lambda: not pane.requests.finetuning, 60, "the fine-tuning")
            assert len(pane.requests.finetune_losses) == 100
            assert pane.candidate.label == "magnitude 30% +100 steps"
            status = pane.status_text()
            assert "fine-tuned 100 steps" in status and f"{pane.candidate.loss:.3f}" in status
            await wait_for_screen(pilot, "fine-tuned 100 steps")

            await pilot.press("i")
            await wait_for(pilot, lambda: pane.int8 is not None, 30, "the int8 column")
            table = app.query_one(PruneTable)
            assert pane.int8.size_bytes < pane.candidate.size_bytes
            assert pane.int8.sparsity == pytest.approx(pane.candidate.sparsity)
            cells = table.cells()
            assert cells["int8"]["file size"][1].startswith("-")  # smaller than dense
            await wait_for_screen(pilot, table.column("int8")["file size"])
            text = screen_text(app)
            assert "int8" in text and table.column("int8")["file size"] in text
            assert app.session.compress.quantize == "int8"

            await pilot.press("w")
            await wait_for(pilot, lambda: pane.saved_path is not None, 30, "the written model")
            folder = Path(pane.saved_path)
            assert folder.parent == run_dir / "compressed"
            assert (folder / "compressed.json").is_file()
            meta = json.loads((folder / "compressed.json").read_text())
            assert json.dumps(meta)  # readable
            await wait_for_screen(pilot, folder.name)

            # The written model loads again, by the palette's folder picker; a folder that
            # is neither a run nor a compressed model is refused in the dialog.
            written = pane.candidate
            app.action_pick_model()
            await wait_for(pilot, lambda: isinstance(app.screen, PathPickerScreen), 10,
                           "the folder dialog")
            await pilot.press("ctrl+a", "ctrl+k")
            await paste(pilot, str(run_dir / "checkpoints"))
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, PathPickerScreen)
            await wait_for_screen(pilot, "not a run folder nor a compressed model")
            await pilot.press("ctrl+a", "ctrl+k")
            await paste(pilot, str(folder))
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.model_source == str(folder), 30,
                           "the compressed model loaded")
            await wait_for(pilot, lambda: pane.source == str(folder), 10, "the pane's source")
            await wait_for_screen(pilot, f"compressed/{folder.name}")
            text = screen_text(app)
            assert f"compressed/{folder.name}" in text
            assert "magnitude 30% +100 steps" in text  # (what was done to it)
            # The saved counts, not those packed int8 layers show: ~30% zeros.
            assert pane.dense.params == pytest.approx(written.params, rel=0.05)
            assert pane.dense.layers
            assert pane.dense.sparsity == pytest.approx(0.3, abs=0.1)
            assert "int8: generate from it" in text  # and no sweep, no error
            assert not pane.requests.sweeping and not any(
                isinstance(c, msg.Sweep) for c in thread_engines[-1].sent[-3:])
            await pilot.press("right")
            assert any("the loaded model is int8" in n for n in notifications(app))

    run(main())


def test_layers_view_palette_and_sweep_again(trained, thread_factory, thread_engines) -> None:
    session, _run_dir = trained

    async def main() -> None:
        async with real_app(session, thread_factory) as (app, pilot, pane):
            await pilot.press("right", "right", "right", "right")
            await wait_for(pilot, lambda: pane.candidate is not None and not pane.pruning
                           and pane.candidate.label == "magnitude 20%", 10, "the candidate")
            await pilot.press("v")
            await wait_for_screen(pilot, "h.0.attn.c_attn")
            text = screen_text(app)
            assert "h.0.attn.c_attn" in text and "20%" in text
            assert "val loss vs sparsity" not in text
            await pilot.press("v")
            await wait_for_screen(pilot, "val loss vs sparsity")

            await pilot.press("ctrl+p")
            await paste(pilot, "Prune: per-layer sparsity")
            await wait_for(pilot, lambda: _palette_has(app, "Prune: per-layer sparsity"), 10,
                           "the palette")
            await pilot.press("enter")
            await wait_for(pilot, lambda: pane.show_layers, 5, "the layers view")

            sweeps = len(sent(thread_engines[-1], msg.Sweep))
            await pilot.press("u")
            assert len(sent(thread_engines[-1], msg.Sweep)) == sweeps + 1
            await wait_for(pilot, lambda: not pane.requests.sweeping
                           and len(pane.requests.sweep_points) == 11, 30, "the sweep again")

    run(main())


# --------------------------------------------------------------------------- scripted engine


def figures(label: str, sparsity: float, loss: float, size: int = 56640,
            layers: list[tuple[str, float]] | None = None) -> ModelFigures:
    params = 13952
    return ModelFigures(label=label, params=params, nonzero=round(params * (1 - sparsity)),
                        sparsity=sparsity, size_bytes=size, loss=loss,
                        perplexity=2.718281828 ** loss, top1=0.49 - sparsity / 5, top5=0.91,
                        latency_ms=0.5, auc=0.93 - sparsity / 10, token_ms=0.25,
                        layers=layers if layers is not None else
                        [("transformer.h.0.attn.c_attn.weight", sparsity),
                         ("transformer.h.0.mlp.c_fc.weight", sparsity)])


def loss_at(sparsity: float) -> float:
    return 2.02 + 1.5 * sparsity**3


DENSE = figures("dense", 0.0, loss_at(0.0))
SOURCE = "runs/tiny/run-1"


class ScriptedWorkbench:
    """Answers the workbench's commands as the engine would, with fixed numbers and the
    request ids of the commands. While `hold` is set, PruneTo answers wait in `held`; while
    `hold_all` is set, every answer does (in order, as the engine would give them once a long
    measurement ends); a FineTune's answer waits for a Cancel when `hold_finetune` is set.
    `fail` answers PruneTo with an error."""

    def __init__(self) -> None:
        self.hold = False
        self.hold_all = False
        self.hold_finetune = False
        self.fail = False
        self.held: list[msg.Event] = []
        self.candidate = DENSE
        self._finetune: list[msg.Event] = []

    def __call__(self, command: msg.Command) -> list[msg.Event]:
        events = self.answer(command)
        if self.hold_all:
            self.held += events
            return []
        return events

    def answer(self, command: msg.Command) -> list[msg.Event]:
        rid = command.request_id
        if isinstance(command, msg.LoadRun):
            return [msg.ModelLoaded(SOURCE, "gpt", 60, 17, 32, DENSE, request_id=rid)]
        if isinstance(command, msg.PruneTo):
            if self.fail:
                return [msg.Error("internal error: scripted", fatal=False, request_id=rid)]
            s = command.sparsity
            self.candidate = figures(f"{command.method} {s:.0%}", s, loss_at(s))
            events: list[msg.Event] = [msg.Compressed(self.candidate, DENSE, 0.01,
                                                      request_id=rid)]
            if self.hold:
                self.held += events
                return []
            return events
        if isinstance(command, msg.Sweep):
            levels = command.levels
            return [msg.SweepPointMeasured(command.method, x, x, loss_at(x), 1.0, 0.4, 0.9,
                                           last=x == levels[-1], request_id=rid)
                    for x in levels]
        if isinstance(command, msg.Quantize):
            c = self.candidate
            return [msg.Compressed(figures(f"{c.label} int8", c.sparsity, c.loss + 0.004,
                                           size=16012), DENSE, 0.02, request_id=rid)]
        if isinstance(command, msg.FineTune):
            steps = [msg.FinetuneStep(i, command.steps, 2.5 - i / 10, request_id=rid)
                     for i in (1, 2, 3)]
            c = self.candidate
            self.candidate = figures(f"{c.label} +3 steps", c.sparsity, c.loss - 0.05)
            done = msg.Compressed(self.candidate, DENSE, 0.1, request_id=rid)
            if self.hold_finetune:
                self._finetune = [done]
                return steps
            return [*steps, done]
        if isinstance(command, msg.Cancel):
            out, self._finetune = self._finetune, []
            return out
        if isinstance(command, msg.SaveCompressed):
            return [msg.CompressedSaved(f"{SOURCE}/compressed/magnitude-50", request_id=rid)]
        return []


@pytest.fixture
def scripted(fake_engines: list[FakeEngine]):
    workbench = ScriptedWorkbench()

    def factory(session: Session) -> FakeEngine:
        engine = FakeEngine(session, workbench)
        fake_engines.append(engine)
        return engine

    return workbench, factory


async def load_scripted(pilot) -> PrunePane:
    await pilot.press("p")
    pilot.app.post_message(LoadModelRequest(SOURCE))
    pane = pane_of(pilot.app)
    await wait_for(pilot, lambda: pane.dense is not None and not pane.requests.sweeping, 10,
                   "the scripted model")
    return pane


@contextlib.asynccontextmanager
async def scripted_app(tmp_path: Path, scripted, fake_engines: list):
    """The app on the scripted engine, the Prune pane shown with the scripted model loaded:
    (app, pilot, the pane, the engine)."""
    app = LlmlabApp(small_session(tmp_path), None, engine_factory=scripted[1])
    async with app.run_test(size=SIZE) as pilot:
        pane = await load_scripted(pilot)
        yield app, pilot, pane, fake_engines[-1]


def test_a_model_loaded_before_the_pane_was_first_shown_is_there_when_it_is(
        tmp_path: Path, scripted, fake_engines) -> None:
    """The pane's widgets are mounted at its first show; the ModelLoaded that came before is
    handed to it then, and the pane measures the model as it does for one loaded while it
    was hidden."""

    async def main() -> None:
        app = LlmlabApp(small_session(tmp_path), None, engine_factory=scripted[1])
        async with app.run_test(size=SIZE) as pilot:
            pane = pane_of(app)
            app.post_message(LoadModelRequest(SOURCE))
            await wait_for(pilot, lambda: app.model_source == SOURCE, 10, "the model loaded")
            assert not pane.built and pane.dense is None  # (held, not lost)
            assert not sent(fake_engines[-1], msg.Sweep)  # nobody looks: nothing measured
            await pilot.press("p")
            await wait_for(pilot, lambda: pane.dense is not None and not pane.requests.sweeping,
                           10, "the model measured")
            assert pane.source == SOURCE and len(sent(fake_engines[-1], msg.Sweep)) == 1
            await wait_for_screen(pilot, "step 60")

    run(main())


def test_held_keys_send_only_the_newest_position(tmp_path: Path, scripted,
                                                 fake_engines) -> None:
    workbench, _factory = scripted

    async def main() -> None:
        async with scripted_app(tmp_path, scripted, fake_engines) as (app, pilot, pane, engine):
            workbench.hold = True
            await pilot.press(*["right"] * 8)  # a held arrow key
            assert pane.percent == 40
            prunes = sent(engine, msg.PruneTo)
            assert [p.sparsity for p in prunes] == [0.05]  # the rest wait for its answer
            await wait_for_screen(pilot, "measuring magnitude 40% …")
            engine.pending += workbench.held  # the first answer arrives ...
            workbench.held = []
            await wait_for(pilot, lambda: len(sent(engine, msg.PruneTo)) == 2, 5,
                           "the newest position's request")
            assert sent(engine, msg.PruneTo)[-1].sparsity == pytest.approx(0.40)
            engine.pending += workbench.held  # ... then the newest one's
            await wait_for(pilot, lambda: not pane.pruning, 5, "the last answer")
            assert pane.candidate.label == "magnitude 40%"
            assert pane.measured == 2
            assert len(sent(engine, msg.PruneTo)) == 2
            await wait_for(pilot, lambda: not shows(app, "measuring"), 5, "measuring gone")

    run(main())


def test_a_slider_move_interrupts_the_sweep_and_the_curve_finishes_after(
        tmp_path: Path, scripted, fake_engines) -> None:
    async def main() -> None:
        async with scripted_app(tmp_path, scripted, fake_engines) as (app, pilot, pane, engine):
            # As if the sweep were under way, three levels measured so far.
            pane.requests.sweeping = True
            pane.requests.sweep_points = {0.0: 1.0, 10.0: 1.01, 20.0: 1.02}
            await pilot.press("right")
            assert [type(c).__name__ for c in engine.sent[-3:]] == ["Cancel", "PruneTo",
                                                                     "Sweep"]
            resumed = sent(engine, msg.Sweep)[-1]
            assert resumed.method == "magnitude"
            assert resumed.levels == (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
            await wait_for(pilot, lambda: not pane.requests.sweeping and not pane.pruning, 5,
                           "the candidate, then the rest of the curve")
            assert pane.candidate.label == "magnitude 5%"
            assert len(pane.requests.sweep_points) == 11

    run(main())


def test_method_change_sweeps_again_and_the_session_records_the_choices(
        tmp_path: Path, scripted, fake_engines) -> None:
    async def main() -> None:
        async with scripted_app(tmp_path, scripted, fake_engines) as (app, pilot, pane, engine):
            assert [s.method for s in sent(engine, msg.Sweep)] == ["magnitude"]
            await pilot.press("a")  # nothing pruned yet
            assert any("nothing to apply" in n for n in notifications(app))

            await pilot.press("right", "right", "right")
            await wait_for(pilot, lambda: pane.candidate is not None and not pane.pruning, 5,
                           "the candidate")
            assert app.session.compress.sparsity == pytest.approx(0.15)
            pane.requests.sweeping = True  # (as if the sweep were still under way: it is cancelled)
            await pilot.press("e")  # the next method
            assert app.session.compress.method == "global"
            assert [type(c).__name__ for c in engine.sent[-3:]] == ["Cancel", "PruneTo",
                                                                     "Sweep"]
            assert sent(engine, msg.Sweep)[-1].method == "global"
            await wait_for(pilot, lambda: pane.candidate.label == "global 15%"
                           and not pane.requests.sweeping, 5,
                           "the new method's candidate and curve")
            assert len(pane.requests.sweep_points) == 11

            await pilot.press("a")
            await wait_for_screen(pilot, "applied: global 15% is the compressed model")
            compress = app.session.compress
            assert (compress.method, compress.sparsity) == ("global", pytest.approx(0.15))
            assert (compress.finetune_steps, compress.quantize) == (0, "none")
            assert app.dirty

            # Apply records what the compressed model is: fine-tuned, then int8.
            await pilot.press("f")
            await wait_for(pilot, lambda: not pane.requests.finetuning, 5, "the fine-tuning")
            await pilot.press("i")
            await wait_for(pilot, lambda: pane.int8 is not None, 5, "the int8 column")
            assert app.session.compress.quantize == "int8"
            await pilot.press("a")
            await wait_for_screen(pilot,
                                  "applied: global 15% +3 steps int8 is the compressed model")
            assert (compress.finetune_steps, compress.quantize) == (3, "int8")
            # A fresh copy: no int8 column, nothing fine-tuned.
            await pilot.press("right")
            await wait_for(pilot, lambda: pane.candidate.label == "global 20%", 5, "20%")
            assert pane.int8 is None and "int8" not in app.query_one(PruneTable).cells()
            await pilot.press("a")
            assert (compress.method, compress.sparsity, compress.finetune_steps,
                    compress.quantize) == ("global", pytest.approx(0.2), 0, "none")

            # One session, one file: saved, the file has them; opened, the pane shows them.
            path = tmp_path / "pruned.toml"
            assert app.write_session(path)
            saved = load_session(path).compress
            assert (saved.method, saved.sparsity) == ("global", pytest.approx(0.2))
            app.open_session(small_session(tmp_path), None)
            await pilot.pause()
            assert (pane.method, pane.percent) == ("magnitude", 0)
            app.open_session(load_session(path), path)
            await pilot.pause()
            assert (pane.method, pane.percent) == ("global", 20)
            assert app.query_one(Slider).value == 20 and not app.dirty

    run(main())


def test_quick_moves_keep_the_slider_and_the_session_in_step(tmp_path: Path, scripted,
                                                              fake_engines) -> None:
    async def main() -> None:
        async with scripted_app(tmp_path, scripted, fake_engines) as (app, pilot, pane, _engine):
            await pilot.press("right", "right", "left", "right", "left", "left", "right")
            await wait_for(pilot, lambda: not pane.pruning, 5, "the last answer")
            await pilot.pause(0.1)
            assert pane.percent == 5 and app.query_one(Slider).value == 5
            assert app.session.compress.sparsity == pytest.approx(0.05)
            assert pane.candidate.label == "magnitude 5%"

    run(main())


def test_session_shows_without_pruning_or_editing_back(tmp_path: Path, scripted,
                                                        fake_engines) -> None:
    _workbench, factory = scripted

    async def main() -> None:
        app = LlmlabApp(small_session(tmp_path), None, engine_factory=factory)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("p")
            pane = pane_of(app)
            await wait_for_screen(
                pilot, "No model loaded. Train one (s), or open a run in the Runs pane (r, then o)")
            await pilot.press("f")
            assert any("No model loaded" in n for n in notifications(app))

            opened = small_session(tmp_path)
            opened.compress.method, opened.compress.sparsity = "random", 0.3
            app.open_session(opened, tmp_path / "tiny.toml")
            await pilot.pause()
            assert (pane.method, pane.percent) == ("random", 30)
            assert app.query_one(Slider).value == 30
            await wait_for_screen(pilot, "30%")
            await wait_for_screen(pilot, "random")
            assert not app.dirty  # nothing posted back
            assert all(not sent(e, msg.PruneTo) for e in fake_engines)

            # With a model loaded, the session's sparsity is pruned at once.
            pilot.app.post_message(LoadModelRequest(SOURCE))
            await wait_for(pilot, lambda: pane.candidate is not None, 10, "the candidate")
            assert pane.candidate.label == "random 30%"
            assert not app.dirty

    run(main())


def test_cancel_fine_tuning_and_errors_clear_measuring(tmp_path: Path, scripted,
                                                       fake_engines) -> None:
    workbench, _factory = scripted

    async def main() -> None:
        async with scripted_app(tmp_path, scripted, fake_engines) as (app, pilot, pane, _engine):
            await pilot.press("c")
            assert any("nothing to cancel" in n for n in notifications(app))
            await pilot.press("right", "right")
            await wait_for(pilot, lambda: pane.candidate is not None and not pane.pruning, 5,
                           "the candidate")
            workbench.hold_finetune = True
            app.edit("compress.finetune_steps", 40)
            await pilot.press("f")
            await wait_for(pilot, lambda: len(pane.requests.finetune_losses) == 3, 5, "the losses")
            assert sent(fake_engines[-1], msg.FineTune)[-1].steps == 40
            await wait_for_screen(pilot, "fine-tuning 3/40 loss 2.200")
            text = screen_text(app)
            assert "fine-tuning 3/40 loss 2.200" in text and sparkline([2.4, 2.3, 2.2]) in text
            await pilot.press("c")
            assert isinstance(fake_engines[-1].sent[-1], msg.Cancel)
            # It names the fine-tuning (not whatever runs when the engine reads it), and the
            # answers come to the app, which hands the pane its copies.
            tune = sent(fake_engines[-1], msg.FineTune)[-1]
            assert fake_engines[-1].sent[-1].target == tune.request_id
            assert app.client.target is app
            await wait_for(pilot, lambda: not pane.requests.finetuning, 5,
                           "the stopped fine-tuning")
            assert pane.candidate.label == "magnitude 10% +3 steps"
            await wait_for_screen(pilot, "fine-tuned 3 steps: train loss 2.400 → 2.200")

            workbench.fail = True
            await pilot.press("right")
            await wait_for(pilot, lambda: not pane.pruning, 5, "the error")
            await wait_for(pilot, lambda: not shows(app, "measuring"), 5, "measuring gone")
            assert pane.candidate.label == "magnitude 10% +3 steps"  # (as it was)
            workbench.fail = False
            await pilot.press("right")
            await wait_for(pilot, lambda: pane.candidate.label == "magnitude 20%", 5,
                           "pruning again after the error")

    run(main())


def test_fine_tune_pressed_while_measuring_keeps_the_fine_tuned_result(
        tmp_path: Path, scripted, fake_engines) -> None:
    """The issue's case: → and then f at once while "measuring ... 50%" runs. The log said
    "fine-tuned 100 steps ... val loss 3.712" and the table kept the un-fine-tuned 3.916: the
    fine-tuning went to the engine before the newest position's PruneTo, and that PruneTo's
    answer overwrote the fine-tuned result. The engine answers in order; here it answers
    once the measurement in flight is over, all at once."""
    workbench, _factory = scripted

    async def main() -> None:
        async with scripted_app(tmp_path, scripted, fake_engines) as (app, pilot, pane, engine):
            await pilot.press("right")
            await wait_for(pilot, lambda: pane.candidate is not None and not pane.pruning, 5,
                           "the candidate at 5%")
            workbench.hold_all = True  # the engine is busy measuring from here on
            await pilot.press("right", "right")  # 10% in flight, 15% waits for its answer
            assert "measuring magnitude 15% …" in screen_text(app)
            await pilot.press("f")  # at once: for the copy at 15%
            kinds = [(type(c).__name__, getattr(c, "sparsity", None)) for c in engine.sent]
            assert kinds[-3:] == [("PruneTo", 0.10), ("PruneTo", 0.15), ("FineTune", None)]
            workbench.hold_all = False
            engine.pending += workbench.held  # the answers, in the order asked
            workbench.held = []
            await wait_for(pilot, lambda: not pane.requests.finetuning and not pane.pruning, 5,
                           "every answer")
            await pilot.pause()
            assert pane.candidate.label == "magnitude 15% +3 steps"
            fine_tuned = pane.candidate
            assert table_cells(DENSE, fine_tuned, None)["candidate"]["val loss"][0] in \
                screen_text(app)
            assert "fine-tuned 3 steps" in screen_text(app)
            await pilot.press("a")
            assert app.session.compress.finetune_steps == 3
            assert app.session.compress.sparsity == pytest.approx(0.15)

            # A stale answer (an older request's, arriving late) changes nothing shown.
            first = sent(engine, msg.PruneTo)[0]
            engine.pending.append(msg.Compressed(figures("magnitude 5%", 0.05, 9.9), DENSE,
                                                 0.01, request_id=first.request_id))
            engine.pending.append(msg.SweepPointMeasured("magnitude", 0.5, 0.5, 9.9, 1.0, 0.1,
                                                         0.2, request_id=first.request_id))
            await pilot.pause(0.2)
            assert pane.candidate is fine_tuned and pane.requests.sweep_points[50.0] != 9.9

    run(main())


def test_training_shows_when_it_waits_for_workbench_work(tmp_path: Path, fake_factory,
                                                         fake_engines) -> None:
    """A sweep in the engine of a running training holds the training: the progress line
    says so (no ETA), the title says "waiting", and a stop pressed meanwhile is acknowledged
    at once, not 95 s later when the sweep is over."""
    from tui.widgets.progress_line import ProgressLine
    from tui.widgets.title_bar import TitleBar

    async def main() -> None:
        app = LlmlabApp(small_session(tmp_path), None, engine_factory=fake_factory)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("t", "s")
            pane = app.train_pane
            await wait_for(pilot, lambda: len(pane.history.train_loss) == 60, 10, "the steps")
            line = app.query_one(ProgressLine)
            assert "ETA" in str(line.render())
            engine = fake_engines[-1]
            engine.pending += [msg.TrainingWaits("pruning sweep"),
                               msg.TrainingWaits("pruning sweep", 3, 11)]
            await wait_for(pilot, lambda: "training waits: pruning sweep (3/11)"
                           in screen_text(app), 5, "the wait on screen")
            text = screen_text(app)
            assert "ETA" not in text and "tok/s" not in str(line.render())
            assert "60/200" in str(line.render())  # where the training stands
            assert "waiting" in str(app.query_one(TitleBar).render())
            await pilot.press("space")
            assert "pause queued: after the sweep level in progress" in notifications(app)
            assert sent(engine, msg.Pause)
            engine.pending.append(msg.TrainingWaits(""))
            await wait_for(pilot, lambda: not line.waiting, 5, "the training going on")
            assert "waiting" not in str(app.query_one(TitleBar).render())
            texts = pane.event_log.texts
            assert texts.count("training waits: pruning sweep") == 1  # once, not per level
            assert texts[-1] == "training goes on"

            engine.pending.append(msg.TrainingWaits("fine-tuning"))
            await wait_for(pilot, lambda: line.waiting, 5, "a fine-tuning")
            await pilot.press("x")
            assert "stop queued: after the fine-tuning step in progress" in notifications(app)
            assert sent(engine, msg.Stop)
            # (the scripted engine stops at once: a training that ended waits for nothing)
            await wait_for(pilot, lambda: not line.waiting, 5, "the stopped training")

    run(main())


def test_prune_pane_snapshot(snap_compare, tmp_path: Path, scripted) -> None:
    _workbench, factory = scripted
    app = LlmlabApp(small_session(tmp_path), None, engine_factory=factory)

    async def run_before(pilot) -> None:
        pane = await load_scripted(pilot)
        await pilot.press(*["right"] * 10)
        await wait_for(pilot, lambda: pane.candidate is not None and not pane.pruning
                       and pane.percent == 50, 5, "the candidate at 50%")
        await pilot.press("i")
        await wait_for(pilot, lambda: pane.int8 is not None, 5, "the int8 column")
        app.clear_notifications()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


# --------------------------------------------------------------------------- pure parts


def test_table_cells_and_formats() -> None:
    cand = figures("magnitude 50%", 0.5, 2.5)
    cells = table_cells(DENSE, cand, None)
    assert set(cells) == {"dense", "candidate"}
    value, delta, sign = cells["candidate"]["val loss"]
    assert (value, sign) == ("2.500", -1) and delta == f"{2.5 - DENSE.loss:+.3f}"
    assert cells["candidate"]["non-zero"] == ("6,976", "-50%", 1)
    assert cells["candidate"]["top-1"][1:] == ("-10.0", -1)
    assert cells["dense"]["val loss"][1:] == ("", 0)
    assert cells["candidate"]["ROC AUC"] == ("0.880", "-0.050", -1)  # higher is better
    assert table_cells(DENSE, dataclasses.replace(cand, auc=None), None)["candidate"][
        "ROC AUC"] == ("–", "", 0)  # not measured
    assert cells["candidate"]["latency"] == ("0.50 ms", "", 0)
    assert cells["candidate"]["per token"] == ("0.25 ms", "", 0)
    # int8 slower than fp32 (a small model): the int8 column says so, where it is slower.
    slow = dataclasses.replace(cand, label="int8", latency_ms=0.45, token_ms=0.3)
    int8_cells = table_cells(DENSE, None, slow)["int8"]
    assert int8_cells["per token"] == ("0.30 ms", "slower", -1)
    assert int8_cells["latency"] == ("0.45 ms", "", 0)  # faster per window
    fast = dataclasses.replace(slow, token_ms=0.2)
    assert table_cells(DENSE, None, fast)["int8"]["per token"] == ("0.20 ms", "", 0)
    untrusted = dataclasses.replace(cand, latency_ms=None)  # (timings too spread to show)
    assert table_cells(DENSE, untrusted, None)["candidate"]["latency"] == ("–", "", 0)
    assert compact_count(13952) == "13,952" and compact_count(1_234_567) == "1.23M"
    assert human_bytes(56640) == "55.3 KB" and human_bytes(512) == "512 B"
    assert short_name("transformer.h.0.mlp.c_fc.weight") == "h.0.mlp.c_fc"
    assert bar(0.5, 4) == "██  " and bar(0.0, 3) == "   "
    assert sparkline([3.0, 2.0, 1.0]) == "█▅▁" and sparkline([]) == ""
