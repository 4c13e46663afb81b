"""The workbench through the engine's message API: load, prune, sweep, fine-tune, quantize,
save, evaluate and generate, as the Prune and Generate panes drive them.

One tiny gpt and one tiny lstm run are trained once for the module; every test then puts
commands on the engine's queue, ends them with Shutdown and runs `serve()`, recording events.
"""

from __future__ import annotations

import hashlib
import math
import os
import queue
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.engines import Hook, of, recording_engine
from helpers.sessions import tiny_session

from core import messages as msg
from core.engine import Engine
from core.generate import Sampling
from core.prune import METHODS
from core.session import Session
from core.values import SWEEP_LEVELS
from core.workbench import Workbench

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def workbench_session(folder: Path, arch: str) -> Session:
    """A 30-step run of `arch`, evaluated at its end."""
    return tiny_session(folder, arch, name=arch, max_steps=30, eval_iters=2, log_interval=10,
                        eval_interval=30)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Session, Path]]:
    """arch -> (session, run folder): a 30-step gpt and lstm, trained once."""
    folder = tmp_path_factory.mktemp("workbench")
    out = {}
    with pytest.MonkeyPatch.context() as mp:  # (the autouse cache fixture is per test)
        mp.setenv("LLMLAB_CACHE_DIR", str(folder / "cache"))
        for arch in ("gpt", "lstm"):
            s = workbench_session(folder, arch)
            events: list[msg.Event] = []
            assert Engine(s, events.append).train() == "finished", of(events, msg.Error)
            (started,) = of(events, msg.RunStarted)
            out[arch] = (s, Path(started.run_dir))
    return out


class Script(queue.Queue):
    """Commands queued in advance, then a Shutdown when the engine next waits for one.

    A Shutdown queued with the others would cancel the first long operation (a sweep, a
    fine-tuning, a generation look for Cancel or Shutdown in the queue while they run), so it
    is only handed out by a blocking `get`: once every command has been answered.
    """

    def get(self, block: bool = True, timeout: float | None = None) -> msg.Command:
        try:
            return super().get(block=False)
        except queue.Empty:
            if block:
                return msg.Shutdown()
            raise


def serve(session: Session, *commands: msg.Command,
          hook: Hook | None = None) -> tuple[Engine, list[msg.Event]]:
    """Queue `commands` and serve them all, then Shutdown; (engine, every event in order)."""
    commands_q = Script()
    for command in commands:
        commands_q.put(command)
    engine, events = recording_engine(session, hook, commands_q)
    engine.serve()  # returns: every command, failing or not, was answered
    return engine, events


def no_errors(events: list[msg.Event]) -> None:
    assert not of(events, msg.Error), of(events, msg.Error)


def file_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(events: list[msg.Event]) -> msg.Error:
    (error,) = of(events, msg.Error)
    assert not error.fatal
    assert error.message.strip() and "\n" not in error.message
    assert "Traceback" not in error.message
    return error


# --------------------------------------------------------------------------- load and prune


@pytest.mark.parametrize("arch", ["gpt", "lstm"])
def test_every_method_prunes_a_copy_to_half_and_leaves_the_run_alone(runs, arch):
    session, run_dir = runs[arch]
    checkpoints = file_hashes(run_dir / "checkpoints")
    before: dict[str, torch.Tensor] = {}

    def snapshot(engine: Engine, event: msg.Event) -> None:
        if isinstance(event, msg.ModelLoaded):
            before.update({k: v.clone() for k, v in engine.workbench.model.state_dict().items()})

    commands = [msg.PruneTo(method, 0.5) for method in METHODS]
    engine, events = serve(session, msg.LoadRun(str(run_dir)), *commands, msg.Evaluate(),
                           hook=snapshot)
    no_errors(events)

    (loaded,) = of(events, msg.ModelLoaded)
    assert Path(loaded.source) == run_dir and loaded.arch == arch and loaded.step == 30
    assert loaded.vocab_size == engine.workbench.bench.tokenizer.vocab_size
    assert loaded.context == 16
    dense = loaded.dense
    assert dense.label == "dense" and dense.sparsity == 0.0 and dense.nonzero == dense.params
    assert dense.params > 0 and dense.size_bytes > 0
    assert dense.latency_ms is None or dense.latency_ms > 0  # (None: too noisy to show)
    assert 0 < dense.loss < 3 and 0 < dense.top1 <= dense.top5 <= 1
    assert dense.layers and all(sparsity == 0.0 for _, sparsity in dense.layers)

    compressed = of(events, msg.Compressed)
    assert len(compressed) == len(METHODS)
    for method, event in zip(METHODS, compressed, strict=True):
        figures = event.figures
        assert figures.label == f"{method} 50%"
        assert figures.sparsity == pytest.approx(0.5, abs=0.02), (method, figures.sparsity)
        assert figures.nonzero < dense.nonzero
        assert event.dense == dense and event.seconds > 0
        layer_sparsity = [s for _, s in figures.layers]
        assert max(layer_sparsity) > 0.3  # real zeros, reported per layer

    # The dense model and the run's files are exactly as trained.
    after = engine.workbench.model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert file_hashes(run_dir / "checkpoints") == checkpoints
    assert not (run_dir / "compressed").exists()  # nothing saved unless asked

    # Evaluate with a loaded workbench and no training: the dense model's report over the
    # whole val split.
    (report,) = of(events, msg.Evaluated)
    assert report.split == "val" and report.step == 30 and Path(report.source) == run_dir
    assert report.scope.startswith("full val split: ") and report.figures["batches"] is None
    f = report.figures
    assert 0 < f["loss"] < 3 and f["top1"] <= f["top5"] and 0 < f["macro_f1"] <= 1
    assert [name for name, _, _ in report.rows][:2] == ["loss", "perplexity"]
    assert any(name.startswith("bits/char") for name, _, _ in report.rows)


def test_a_sweep_reports_every_level_and_starts_at_the_dense_loss(runs):
    session, run_dir = runs["gpt"]
    _, events = serve(session, msg.LoadRun(str(run_dir)), msg.Sweep("magnitude"),
                      msg.Sweep("random", levels=(0.0, 0.9)))
    no_errors(events)
    dense = of(events, msg.ModelLoaded)[0].dense
    points = of(events, msg.SweepPointMeasured)
    magnitude = [p for p in points if p.method == "magnitude"]
    assert [p.sparsity for p in magnitude] == list(SWEEP_LEVELS)
    assert [p.last for p in magnitude] == [False] * (len(SWEEP_LEVELS) - 1) + [True]
    assert magnitude[0].loss == dense.loss  # the same sample, the same weights
    assert magnitude[0].top1 == pytest.approx(dense.top1)
    for p in magnitude:
        assert p.real_sparsity == pytest.approx(p.sparsity, abs=0.02)
    assert magnitude[-1].loss > magnitude[0].loss  # 95% costs something
    random = [p for p in points if p.method == "random"]
    assert [p.sparsity for p in random] == [0.0, 0.9] and random[-1].last
    assert random[0].loss == pytest.approx(dense.loss, rel=1e-6)
    assert random[1].loss > magnitude[SWEEP_LEVELS.index(0.9)].loss  # the baseline is worse
    assert not of(events, msg.Compressed)  # a sweep leaves no candidate behind


# --------------------------------------------------------------------------- fine-tune, int8, save


@pytest.mark.parametrize("arch", ["gpt", "lstm"])
def test_finetune_quantize_save_and_reload(runs, arch, tmp_path):
    session, run_dir = runs[arch]
    folder = tmp_path / f"{arch}-m50-ft5-int8"
    engine, events = serve(session, msg.LoadRun(str(run_dir)), msg.PruneTo("magnitude", 0.5),
                           msg.FineTune(5), msg.Quantize(), msg.SaveCompressed(str(folder)))
    no_errors(events)
    dense = of(events, msg.ModelLoaded)[0].dense

    steps = of(events, msg.FinetuneStep)
    assert [e.step for e in steps] == [1, 2, 3, 4, 5]
    assert all(e.steps == 5 and 0 < e.loss < 5 for e in steps)

    pruned, tuned, quantized = of(events, msg.Compressed)
    assert tuned.figures.label == "magnitude 50% +5 steps"
    assert tuned.figures.sparsity == pytest.approx(pruned.figures.sparsity)  # zeros stay zero
    assert tuned.figures.nonzero == pruned.figures.nonzero
    assert "int8" in quantized.figures.label
    assert quantized.figures.size_bytes < 0.5 * dense.size_bytes
    assert quantized.figures.sparsity == pytest.approx(tuned.figures.sparsity)
    assert quantized.figures.loss == pytest.approx(tuned.figures.loss, abs=0.1)

    (saved,) = of(events, msg.CompressedSaved)
    assert Path(saved.path) == folder
    for name in ("compressed.json", "model.safetensors", "session.toml", "tokenizer.json"):
        assert (folder / name).is_file(), name

    # A new workbench on the saved folder: the same int8 model, generating and evaluating.
    wb = Workbench(folder)
    assert wb.bench.compressed_meta["quantize"] == "int8"
    assert wb.bench.compressed_meta["method"] == "magnitude"
    assert wb.bench.compressed_meta["finetune_steps"] == 5
    assert wb.dense_figures().loss == pytest.approx(quantized.figures.loss, rel=1e-5)
    text = "".join(wb.generate("jo", Sampling(max_tokens=12, seed=1)))
    assert len(text) == 12 and set(text) <= set("abcdefghijklmnop\n")
    assert 0 < wb.evaluate("val", iters=2).macro_f1 <= 1

    # The engine loads it too, and cannot prune an int8 model (one line, not a crash).
    _, events = serve(session, msg.LoadRun(str(folder)), msg.PruneTo("magnitude", 0.5),
                      msg.Generate("jo", max_tokens=5, seed=1))
    (loaded,) = of(events, msg.ModelLoaded)
    assert loaded.step == 30 and loaded.arch == arch
    assert "int8" in one_line_error(events).message
    assert of(events, msg.Generated)[-1].done


# --------------------------------------------------------------------------- generation


def test_generate_streams_what_llmlab_sample_prints(runs):
    session, run_dir = runs["gpt"]
    g = session.generate
    command = msg.Generate("jo", max_tokens=40, temperature=g.temperature, top_k=g.top_k,
                           top_p=g.top_p, repetition_penalty=g.repetition_penalty,
                           stop=tuple(g.stop), seed=3, request_id=11)
    _, events = serve(session, msg.LoadRun(str(run_dir)), command)
    no_errors(events)
    pieces = of(events, msg.Generated)
    assert pieces[-1].done and not any(p.done for p in pieces[:-1])
    assert pieces[-1].tokens == 40
    assert all(p.request_id == 11 and p.model == "dense" for p in pieces)
    text = "".join(p.text for p in pieces)

    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # LLMLAB_CACHE_DIR: this test's
    cli = subprocess.run(
        [sys.executable, "-m", "llmlab", "sample", str(run_dir), "--prompt", "jo",
         "--tokens", "40", "--seed", "3"], capture_output=True, text=True, env=env, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout == "jo" + text + "\n"


def test_a_generation_takes_the_threads_it_is_given_and_shows_its_first_token_at_once(
        runs, monkeypatch):
    """No core is held back for the app any more (it draws 4 times a second); the first
    token is sent alone, so the text starts to show at once."""
    import torch

    from core import device
    from core.generation_stream import GenerationStream

    session, run_dir = runs["gpt"]
    monkeypatch.setenv("LLMLAB_THREADS", "2")  # the user's count: fitting gives it as it is
    before = torch.get_num_threads()
    monkeypatch.setattr(device, "_threads_given", before)
    seen: list[int] = []
    advance = GenerationStream.advance

    def counting(self):
        seen.append(torch.get_num_threads())
        return advance(self)

    monkeypatch.setattr(GenerationStream, "advance", counting)
    try:
        _, events = serve(session, msg.LoadRun(str(run_dir)),
                          msg.Generate("jo", max_tokens=30, seed=3, request_id=1))
    finally:
        torch.set_num_threads(before)
    no_errors(events)
    assert set(seen) == {2}
    pieces = of(events, msg.Generated)
    assert pieces[0].tokens == 1 and not pieces[0].done
    assert pieces[-1].done and pieces[-1].tokens == 30


def test_commands_on_a_run_fit_torch_threads_to_the_free_cores(runs, monkeypatch):
    """`llmlab sample` / `eval` / `prune` on a shared machine: a core kept busy by another
    process is not given to torch (its threads would wait for it at every op)."""
    import torch

    from core import device, threads
    from llmlab.compress_commands import open_workbench

    session, run_dir = runs["gpt"]
    monkeypatch.delenv("LLMLAB_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = len(threads.affinity_cpus())
    before = torch.get_num_threads()
    monkeypatch.setattr(device, "_threads_given", before)
    monkeypatch.setattr(threads.CpuMeter, "busy_elsewhere",
                        lambda self, min_window=0.1: cores - 1.0)  # all but one core busy
    try:
        open_workbench(str(run_dir), run_dir.parent)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_cancel_ends_a_long_generation_early(runs):
    session, run_dir = runs["lstm"]
    long = msg.Generate("jo", max_tokens=20_000, seed=1, request_id=5)
    # Both queued before serving: the Cancel waits in the queue while Generate runs.
    _, events = serve(session, msg.LoadRun(str(run_dir)), long, msg.Cancel(long.request_id),
                      msg.PruneTo("magnitude", 0.5))
    no_errors(events)
    done = [e for e in of(events, msg.Generated) if e.done]
    assert len(done) == 1 and done[0].request_id == 5
    assert 0 < done[0].tokens < 20_000
    assert len(of(events, msg.Compressed)) == 1  # what came after the Cancel still ran


def test_cancel_ends_a_finetuning_and_keeps_the_steps_done(runs):
    session, run_dir = runs["gpt"]
    tune = msg.FineTune(10_000)
    _, events = serve(session, msg.LoadRun(str(run_dir)), msg.PruneTo("magnitude", 0.5),
                      tune, msg.Cancel(tune.request_id))
    no_errors(events)
    steps = of(events, msg.FinetuneStep)
    assert [e.step for e in steps] == [1]  # the Cancel is seen after the first step
    pruned, tuned = of(events, msg.Compressed)
    assert tuned.figures.label == "magnitude 50% +1 steps"
    assert tuned.figures.sparsity == pytest.approx(pruned.figures.sparsity)


def test_a_cancel_stops_only_the_request_it_names(runs):
    """A Cancel meant for a sweep that ended before the engine read it must not stop the
    fine-tuning queued behind the sweep (it names its target by request id); a Cancel naming
    a request still waiting in the queue keeps it from starting."""
    session, run_dir = runs["gpt"]
    sweep, tune = msg.Sweep("magnitude", (0.5,)), msg.FineTune(3)
    skipped = msg.Quantize()

    def late_cancel(engine: Engine, event: msg.Event) -> None:
        if isinstance(event, msg.FinetuneStep) and event.step == 1:  # the sweep is over
            engine.commands.put(msg.Cancel(sweep.request_id))
            engine.commands.put(skipped)
            engine.commands.put(msg.Cancel(skipped.request_id))

    _, events = serve(session, msg.LoadRun(str(run_dir)), msg.PruneTo("magnitude", 0.5),
                      sweep, tune, hook=late_cancel)
    no_errors(events)
    assert len(of(events, msg.SweepPointMeasured)) == 1
    steps = [e for e in of(events, msg.FinetuneStep) if e.request_id == tune.request_id]
    assert [e.step for e in steps] == [1, 2, 3]  # not stopped by the sweep's Cancel
    answered = {e.request_id for e in of(events, msg.Compressed)}
    assert tune.request_id in answered and skipped.request_id not in answered


def test_every_command_gets_its_own_request_id_and_its_answer_carries_it(runs):
    session, run_dir = runs["gpt"]
    load, prune, save = msg.LoadRun(str(run_dir)), msg.PruneTo("magnitude", 0.5), \
        msg.SaveCompressed()
    assert len({load.request_id, prune.request_id, save.request_id}) == 3
    _, events = serve(session, load, prune, save)
    assert of(events, msg.ModelLoaded)[0].request_id == load.request_id
    assert of(events, msg.Compressed)[0].request_id == prune.request_id
    assert of(events, msg.CompressedSaved)[0].request_id == save.request_id


def test_a_shutdown_during_a_sweep_cancels_it(runs):
    session, run_dir = runs["gpt"]
    engine, events = serve(session, msg.LoadRun(str(run_dir)), msg.Sweep("magnitude"),
                           msg.Shutdown(), msg.PruneTo("magnitude", 0.5))
    points = of(events, msg.SweepPointMeasured)
    assert len(points) == 1 and not points[0].last  # checked after every point
    assert not of(events, msg.Compressed)  # serving ended at the Shutdown
    no_errors(events)


def test_generate_from_the_compressed_candidate(runs):
    session, run_dir = runs["gpt"]
    args = {"prompt": "jo", "max_tokens": 10, "seed": 2, "temperature": 0.0}
    _, events = serve(session, msg.LoadRun(str(run_dir)), msg.Generate(**args, model="compressed"),
                      msg.PruneTo("structured", 0.5), msg.Generate(**args, model="compressed"),
                      msg.Generate(**args, model="dense"))
    assert "prune or quantize" in one_line_error(events).message  # no candidate yet
    done = [e for e in of(events, msg.Generated) if e.done]
    assert [e.model for e in done] == ["compressed", "dense"]
    assert all(e.tokens == 10 for e in done)


# --------------------------------------------------------------------------- mistakes


def test_workbench_commands_before_a_load_are_one_line_errors(runs):
    session, _ = runs["gpt"]
    commands = [msg.PruneTo("magnitude", 0.5), msg.Sweep("magnitude"), msg.FineTune(2),
                msg.Quantize(), msg.SaveCompressed(), msg.Generate("jo"), msg.Cancel(0)]
    engine, events = serve(session, *commands)
    errors = of(events, msg.Error)
    assert len(errors) == 6  # the Cancel with nothing under way is harmless
    for error in errors:
        assert not error.fatal and "no model loaded" in error.message
        assert "\n" not in error.message
    assert engine.workbench is None
    assert engine.state == "idle"


@pytest.mark.parametrize(("commands", "words"), [
    ([msg.PruneTo("magnitude", 1.5)], ["sparsity", "1.5"]),
    ([msg.PruneTo("magnitude", -0.1)], ["sparsity"]),
    ([msg.PruneTo("sideways", 0.5)], ["sideways", "magnitude"]),
    ([msg.Sweep("magnitude", levels=(0.0, 1.5))], ["sparsity", "1.5"]),
    ([msg.Sweep("all")], ["all"]),
    ([msg.FineTune(3)], ["prune"]),
    ([msg.Quantize(), msg.Quantize()], ["already int8"]),
    ([msg.Quantize(), msg.FineTune(3)], ["int8"]),
    ([msg.Generate("jo", model="both")], ["both", "dense or compressed"]),
    ([msg.Generate("XYZ")], ["XYZ"]),
    ([msg.Generate("jo", top_p=0.0, max_tokens=0)], ["generate.top_p", "generate.max_tokens"]),
])
def test_a_bad_command_is_one_line_and_the_engine_keeps_serving(runs, commands, words):
    session, run_dir = runs["gpt"]
    _, events = serve(session, msg.LoadRun(str(run_dir)), *commands,
                      msg.PruneTo("magnitude", 0.5))
    error = one_line_error(events)
    for word in words:
        assert word in error.message, error.message
    after = of(events, msg.Compressed)[-1]  # the next command is answered as usual
    assert after.figures.label == "magnitude 50%"


def test_an_unexpected_exception_is_a_non_fatal_error(runs, monkeypatch):
    session, run_dir = runs["gpt"]

    def broken(self):
        raise RuntimeError("quantize backend missing")

    monkeypatch.setattr(Workbench, "quantize", broken)
    _, events = serve(session, msg.LoadRun(str(run_dir)), msg.Quantize(),
                      msg.PruneTo("magnitude", 0.5))
    error = one_line_error(events)
    assert error.message == "internal error: RuntimeError: quantize backend missing"
    assert "Traceback" in error.details["traceback"]  # for a bug report, not the screen
    assert len(of(events, msg.Compressed)) == 1


def test_loading_a_missing_run_is_one_line_and_nothing_is_loaded(runs, tmp_path):
    session, _ = runs["gpt"]
    engine, events = serve(session, msg.LoadRun(str(tmp_path / "nope")), msg.Quantize())
    errors = of(events, msg.Error)
    assert len(errors) == 2 and not any(e.fatal for e in errors)
    assert "no model loaded" in errors[1].message
    assert not of(events, msg.ModelLoaded) and engine.workbench is None


# --------------------------------------------------------------------------- surprise


@pytest.mark.parametrize("arch", ["gpt", "lstm"])
def test_score_text_gives_each_token_its_loss_under_the_model(runs, arch):
    session, run_dir = runs[arch]
    text = "abcabcabcabc" * 8  # longer than the context: sliding windows are used too
    engine, events = serve(session, msg.LoadRun(str(run_dir)), msg.ScoreText(text, request_id=7))
    no_errors(events)
    (scored,) = of(events, msg.TextScored)
    assert scored.request_id == 7 and scored.source == str(run_dir)
    assert len(scored.spans) == len(scored.losses) == len(text)  # char tokens
    assert math.isnan(scored.losses[0])
    rest = scored.losses[1:]
    assert all(x >= 0 and math.isfinite(x) for x in rest)
    assert scored.mean_loss == pytest.approx(sum(rest) / len(rest))
    # The same numbers as core's per_token_loss on the encoded text.
    from core.evaluate import per_token_loss

    wb = engine.workbench
    expected = per_token_loss(wb.model, wb.bench.tokenizer.encode(text)).tolist()
    assert rest == pytest.approx(expected, abs=1e-5)


def test_score_text_before_a_load_is_one_line(runs):
    session, _ = runs["gpt"]
    _, events = serve(session, msg.ScoreText("abc"))
    assert "no model loaded" in one_line_error(events).message


def test_an_error_names_the_command_and_request_that_failed(runs):
    session, run_dir = runs["gpt"]
    load = msg.LoadRun("/nope")
    _, events = serve(session, msg.ScoreText("abc", request_id=41), msg.LoadRun(str(run_dir)),
                      msg.Generate("ab", max_tokens=3, model="compressed", request_id=42),
                      msg.PruneTo("magnitude", 1.5, request_id=43), load)
    errors = of(events, msg.Error)
    # (the command is named by its request id alone: a LoadRun has one too now)
    assert [e.request_id for e in errors] == [41, 42, 43, load.request_id]
    assert all(not e.fatal and "\n" not in e.message for e in errors)


def test_an_unexpected_exception_in_a_load_keeps_the_engine_serving(runs, monkeypatch):
    import core.workbench

    session, run_dir = runs["gpt"]

    def broken(*args, **kwargs):
        raise RuntimeError("torch choked on a file")

    monkeypatch.setattr(core.workbench, "_load_source", broken)
    load = msg.LoadRun(str(run_dir))
    _, events = serve(session, load, msg.ScoreText("abc"))
    errors = of(events, msg.Error)
    assert errors[0].request_id == load.request_id and "torch choked" in errors[0].message
    assert "no model loaded" in errors[1].message  # still serving after it


def test_side_by_side_generations_run_together_and_each_as_alone(runs):
    """A Generate that arrives while one runs joins it (one token each in turn): both
    streams fill at once, and each makes exactly the tokens it makes alone."""
    session, run_dir = runs["gpt"]
    args = {"prompt": "jo", "max_tokens": 300, "seed": 4, "temperature": 0.9}
    both = [msg.Generate(**args, model="dense", request_id=1),
            msg.Generate(**args, model="compressed", request_id=2)]
    _, events = serve(session, msg.LoadRun(str(run_dir)), msg.PruneTo("magnitude", 0.5),
                      *both)
    no_errors(events)
    pieces = of(events, msg.Generated)
    order = [p.request_id for p in pieces]
    first_done = next(i for i, p in enumerate(pieces) if p.done)
    assert 2 in order[:first_done]  # the compressed stream spoke before the dense ended
    texts = {rid: "".join(p.text for p in pieces if p.request_id == rid) for rid in (1, 2)}
    assert all(p.tokens_per_s > 0 for p in pieces if p.done)

    _, alone = serve(session, msg.LoadRun(str(run_dir)), msg.PruneTo("magnitude", 0.5),
                     both[0])
    _, alone2 = serve(session, msg.LoadRun(str(run_dir)), msg.PruneTo("magnitude", 0.5),
                      both[1])
    assert texts[1] == "".join(p.text for p in of(alone, msg.Generated))
    assert texts[2] == "".join(p.text for p in of(alone2, msg.Generated))
    assert texts[1] != texts[2]


def test_a_cancel_ends_every_stream_and_answers_a_generate_not_yet_started(runs):
    session, run_dir = runs["gpt"]
    long = {"prompt": "jo", "max_tokens": 50_000, "seed": 1}
    _, events = serve(session, msg.LoadRun(str(run_dir)),
                      msg.Generate(**long, request_id=1), msg.Generate(**long, request_id=2),
                      msg.Cancel(2), msg.Generate("jo", max_tokens=5, request_id=3))
    no_errors(events)
    done = {e.request_id: e for e in of(events, msg.Generated) if e.done}
    assert set(done) == {1, 2, 3}  # every request gets its last event
    assert done[1].tokens < 50_000 and done[2].tokens < 50_000
    assert done[3].tokens == 5  # asked after the Cancel: it ran


def test_the_candidate_generates_with_its_masks_folded_and_the_same_text(runs):
    from core.generate import Sampling, generate_text
    from core.prune import is_masked
    from core.workbench import Workbench

    _, run_dir = runs["gpt"]
    wb = Workbench(run_dir)
    wb.prune("magnitude", 0.5)
    assert is_masked(wb.candidate)
    s = Sampling(max_tokens=30, temperature=0.9, seed=5)
    masked = "".join(generate_text(wb.candidate, wb.bench.tokenizer, "jo", s))
    assert "".join(wb.generate("jo", s, "compressed")) == masked
    folded = wb._for_inference(wb.candidate)
    assert folded is not wb.candidate and not is_masked(folded)
    assert wb._for_inference(wb.candidate) is folded  # made once ...
    wb.finetune(3)
    assert wb._for_inference(wb.candidate) is not folded  # ... and again when it changes
    assert is_masked(wb.candidate)  # the candidate itself keeps its masks


@pytest.mark.parametrize(("tokenizer", "vocab_size"), [("word", 0), ("bpe", 300)])
def test_score_text_with_word_and_bpe_tokens(tmp_path, tokenizer, vocab_size):
    """Spans and ids agree for every tokenizer: one loss per token of the text."""
    s = workbench_session(tmp_path, "gpt")
    s.data.corpus, s.data.tokenizer, s.data.vocab_size = "sample:tiny-tales", tokenizer, vocab_size
    s.train.max_steps, s.train.eval_interval = 5, 5
    events: list[msg.Event] = []
    assert Engine(s, events.append).train() == "finished", of(events, msg.Error)
    (started,) = of(events, msg.RunStarted)
    text = "Once upon a time, a little fox found a red ball in the garden."
    _, events = serve(s, msg.LoadRun(started.run_dir), msg.ScoreText(text))
    no_errors(events)
    (scored,) = of(events, msg.TextScored)
    assert len(scored.spans) == len(scored.losses) > 5
    assert all(0 <= a < b <= len(text) for a, b in scored.spans)
    assert all(math.isfinite(x) for x in scored.losses[1:])


def test_a_failing_stream_ends_alone_and_names_its_request(runs):
    session, run_dir = runs["gpt"]
    good = msg.Generate("jo", max_tokens=300, seed=1, request_id=1)
    bad = msg.Generate("☃ is not in this vocabulary", max_tokens=5, request_id=2)
    _, events = serve(session, msg.LoadRun(str(run_dir)), good, bad)
    (error,) = of(events, msg.Error)
    assert error.request_id == bad.request_id == 2 and not error.fatal
    done = [e for e in of(events, msg.Generated) if e.done]
    assert [(e.request_id, e.tokens) for e in done] == [(1, 300)]


def test_a_generate_asked_after_another_command_waits_its_turn(runs):
    session, run_dir = runs["gpt"]
    _, events = serve(session, msg.LoadRun(str(run_dir)),
                      msg.Generate("jo", max_tokens=400, request_id=1),
                      msg.PruneTo("magnitude", 0.5),
                      msg.Generate("jo", max_tokens=5, model="compressed", request_id=2))
    no_errors(events)
    pruned = next(i for i, e in enumerate(events) if isinstance(e, msg.Compressed))
    second = [i for i, e in enumerate(events) if isinstance(e, msg.Generated)
              and e.request_id == 2]
    assert second and min(second) > pruned  # from the candidate the PruneTo made


def test_a_resume_that_came_during_a_generation_while_paused_is_not_lost(runs, tmp_path):
    import threading

    _, run_dir = runs["gpt"]
    commands: queue.Queue = queue.Queue()
    sent: list[bool] = []

    def emit(event: msg.Event) -> None:
        if isinstance(event, msg.StepMetrics) and event.step == 2 and not sent:
            sent.append(True)
            for command in (msg.Pause(), msg.LoadRun(str(run_dir)),
                            msg.Generate("jo", max_tokens=300), msg.Resume()):
                commands.put(command)

    engine = Engine(tiny_session(tmp_path, max_steps=6), emit, commands)
    thread = threading.Thread(target=engine.train, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the paused training never saw its Resume"
    assert engine.state == "finished"


def test_an_int8_model_has_the_same_counts_in_the_session_and_reloaded(runs, tmp_path):
    from core.workbench import Workbench

    _, run_dir = runs["gpt"]
    wb = Workbench(run_dir)
    wb.prune("magnitude", 0.5)
    int8 = wb.quantize()
    assert int8.sparsity == pytest.approx(0.5, abs=0.01) and int8.layers
    reloaded = Workbench(wb.save(tmp_path / "m")).dense_figures()
    assert reloaded.label == int8.label == "magnitude 50% int8"
    assert (reloaded.params, reloaded.nonzero, reloaded.sparsity, reloaded.layers) == (
        int8.params, int8.nonzero, int8.sparsity, int8.layers)
