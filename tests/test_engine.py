"""The engine in-process: training quality, exact resume, live commands, failures as events.

Every test builds a tiny session in code and runs `Engine(session, emit).train()`; `emit`
records the events and may post commands to `engine.commands` to act at a precise step.
"""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import pytest
import torch
from helpers.engines import Hook, of, recording_engine
from helpers.sessions import tiny_session

import core.trainer
from core import messages as msg
from core.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from core.engine import Engine
from core.runs import read_metrics, read_run_info
from core.samples import sample_dir, synthetic_entropy_rate
from core.session import Session

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(session: Session, hook: Hook | None = None,
        resume: str | Path | None = None) -> tuple[Engine, str, list[msg.Event]]:
    """Train in-process; (engine, final state, every event in order)."""
    engine, events = recording_engine(session, hook)
    return engine, engine.train(resume), events


def run_dir_of(events: list[msg.Event]) -> Path:
    (started,) = of(events, msg.RunStarted)
    return Path(started.run_dir)


def train_records(run_dir: Path) -> list[dict]:
    return [r for r in read_metrics(run_dir) if r.get("type") == "train"]


def at_step(step: int, command: msg.Command) -> Hook:
    """A hook that posts `command` once, when the StepMetrics of `step` arrives."""

    def hook(engine: Engine, event: msg.Event) -> None:
        if isinstance(event, msg.StepMetrics) and event.step == step:
            engine.commands.put(command)

    return hook


# --------------------------------------------------------------------------- learning


@pytest.mark.parametrize("arch", ["mlp", "lstm", "gru", "gpt"])
def test_every_family_learns_the_markov_chain_near_its_entropy_rate(tmp_path, arch):
    entropy_rate = synthetic_entropy_rate()
    unigram = json.loads((sample_dir() / "synthetic.json").read_text())["unigram_entropy_nats"]
    s = tiny_session(tmp_path, arch, batch_size=16, max_steps=80, eval_interval=80,
                     eval_iters=10)
    s.model.context = 32
    s.optim.lr, s.optim.warmup_steps, s.optim.min_lr = 2e-2, 10, 2e-3
    _, final, events = run(s)
    assert final == "finished"
    val = of(events, msg.EvalMetrics)[-1]
    assert val.step == 80 and val.split == "val"
    assert val.loss < entropy_rate + 0.15, (arch, val.loss, entropy_rate)
    assert val.loss < unigram - 1.0
    assert val.top1 > 0.5  # the most likely successor has p >= 0.5 for every letter
    assert math.isclose(val.perplexity, math.exp(val.loss), rel_tol=1e-6)


# --------------------------------------------------------------------------- exact resume


def test_stop_then_resume_ends_at_exactly_the_same_loss(tmp_path):
    def session(name: str) -> Session:
        s = tiny_session(tmp_path / name, max_steps=24, grad_accum=2)
        s.model.dropout = 0.1  # so the RNG state has to be restored too
        return s

    _, final_a, events_a = run(session("a"))
    assert final_a == "finished"
    losses_a = {e.step: e.loss for e in of(events_a, msg.StepMetrics)}
    assert sorted(losses_a) == list(range(1, 25))

    s = session("b")
    _, final_b1, events_b1 = run(s, at_step(12, msg.Stop()))
    assert final_b1 == "stopped"
    assert [e.state for e in of(events_b1, msg.Status)][-2:] == ["stopping", "stopped"]
    assert max(e.step for e in of(events_b1, msg.StepMetrics)) == 12
    assert [e.step for e in of(events_b1, msg.CheckpointSaved)] == [12]
    run_b = run_dir_of(events_b1)
    assert latest_checkpoint(run_b / "checkpoints").step == 12
    assert read_run_info(run_b)["status"] == "stopped"

    statuses: list[str] = []

    def while_resumed(engine: Engine, event: msg.Event) -> None:
        if isinstance(event, msg.StepMetrics):
            statuses.append(read_run_info(run_b)["status"])

    _, final_b2, events_b2 = run(s, while_resumed, resume=run_b)
    assert final_b2 == "finished"
    assert statuses == ["running"] * 12  # not "stopped" while it trains again
    (started,) = of(events_b2, msg.RunStarted)
    assert started.start_step == 12 and Path(started.run_dir) == run_b
    losses_b = {e.step: e.loss for e in of(events_b1 + events_b2, msg.StepMetrics)}
    assert sorted(losses_b) == list(range(1, 25))
    assert losses_b[24] == losses_a[24]
    assert losses_b == losses_a  # every step, before and after the resume

    records = train_records(run_b)
    assert [r["step"] for r in records] == list(range(1, 25))
    assert records[-1]["loss"] == losses_a[24]
    assert read_run_info(run_b)["status"] == "finished"


def test_stop_without_checkpoint_saves_none(tmp_path):
    s = tiny_session(tmp_path, max_steps=20)
    _, final, events = run(s, at_step(5, msg.Stop(checkpoint=False)))
    assert final == "stopped"
    assert max(e.step for e in of(events, msg.StepMetrics)) == 5
    assert not of(events, msg.CheckpointSaved)
    run_dir = run_dir_of(events)
    assert list_checkpoints(run_dir / "checkpoints") == []
    assert read_run_info(run_dir)["status"] == "stopped"


def test_a_shutdown_right_after_a_stop_still_stops(tmp_path):
    s = tiny_session(tmp_path, max_steps=30)

    def hook(engine: Engine, event: msg.Event) -> None:
        if isinstance(event, msg.StepMetrics) and event.step == 3:
            engine.commands.put(msg.Stop())
            engine.commands.put(msg.Shutdown())  # e.g. the UI closing right after a Stop

    engine, final, events = run(s, hook)
    assert final == "stopped"
    assert max(e.step for e in of(events, msg.StepMetrics)) == 3
    assert [e.step for e in of(events, msg.CheckpointSaved)] == [3]


# --------------------------------------------------------------------------- failures


def test_a_nan_loss_fails_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    poisoned = {"on": False}
    real_build = core.trainer.build_model

    def build(cfg, vocab_size):
        model = real_build(cfg, vocab_size)
        forward = model.forward

        def nan_forward(idx):
            logits = forward(idx)
            return logits * float("nan") if poisoned["on"] else logits

        model.forward = nan_forward
        return model

    monkeypatch.setattr(core.trainer, "build_model", build)

    def hook(engine: Engine, event: msg.Event) -> None:
        if isinstance(event, msg.CheckpointSaved) and event.step == 4:
            poisoned["on"] = True

    s = tiny_session(tmp_path, checkpoint_interval=4)
    _, final, events = run(s, hook)
    assert final == "failed"
    (error,) = of(events, msg.Error)
    assert error.fatal
    assert "\n" not in error.message
    assert "step 5" in error.message and "nan" in error.message.lower()
    assert of(events, msg.Status)[-1].state == "failed"
    assert max(e.step for e in of(events, msg.StepMetrics)) == 4

    run_dir = run_dir_of(events)
    assert [c.step for c in list_checkpoints(run_dir / "checkpoints")] == [4]
    fresh = real_build(s.model, of(events, msg.RunStarted)[0].vocab_size)
    state, meta = load_checkpoint(latest_checkpoint(run_dir / "checkpoints").path, fresh)
    assert meta["step"] == 4 and state["step"] == 4
    assert all(torch.isfinite(p).all() for p in fresh.parameters())
    assert read_run_info(run_dir)["status"] == "failed"


def test_a_missing_corpus_is_an_error_event_and_creates_no_run(tmp_path):
    s = tiny_session(tmp_path)
    s.data.corpus = "no-such-corpus.txt"
    engine, final, events = run(s)
    assert final == "failed" and engine.state == "failed"
    (error,) = of(events, msg.Error)
    assert error.fatal and "\n" not in error.message
    assert "no-such-corpus.txt" in error.message
    assert not error.message.startswith("internal error")
    assert of(events, msg.Status)[-1].state == "failed"
    assert not of(events, msg.RunStarted)
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.rglob("*"))


def test_a_failed_start_leaves_the_previous_run_alone(tmp_path):
    events: list[msg.Event] = []
    engine = Engine(tiny_session(tmp_path, max_steps=3), events.append)
    assert engine.train() == "finished"
    first = run_dir_of(events)
    events.clear()
    assert engine.train(resume=tmp_path / "not-a-run") == "failed"
    (error,) = of(events, msg.Error)
    assert "not-a-run" in error.message and "\n" not in error.message
    assert read_run_info(first)["status"] == "finished"
    assert engine.trainer is None


def test_an_unavailable_device_is_an_error_event_naming_the_field(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    s = tiny_session(tmp_path)
    s.train.device = "cuda"
    _, final, events = run(s)
    assert final == "failed"
    (error,) = of(events, msg.Error)
    assert "train.device" in error.message and "\n" not in error.message
    assert not of(events, msg.RunStarted)


# --------------------------------------------------------------------------- live changes


def test_a_live_lr_change_applies_from_the_next_step_and_is_recorded(tmp_path):
    s = tiny_session(tmp_path, max_steps=12, checkpoint_interval=10)
    s.optim.schedule, s.optim.warmup_steps, s.optim.lr, s.optim.min_lr = "constant", 0, 1e-3, 0.0

    def hook(engine: Engine, event: msg.Event) -> None:
        if isinstance(event, msg.StepMetrics) and event.step == 5:
            engine.commands.put(msg.SetHparam("optim.lr", 0.01))
            engine.commands.put(msg.SetHparam("model.n_layer", 3))

    _, final, events = run(s, hook)
    assert final == "finished"
    (changed,) = of(events, msg.HparamChanged)
    assert (changed.step, changed.name, changed.old, changed.new) == (6, "optim.lr", 1e-3, 0.01)
    lrs = {e.step: e.lr for e in of(events, msg.StepMetrics)}
    assert sorted(lrs) == list(range(1, 13))
    assert all(lrs[step] == 1e-3 for step in range(1, 6))
    assert all(lrs[step] == 0.01 for step in range(6, 13))

    (refused,) = of(events, msg.Error)
    assert not refused.fatal and "model.n_layer" in refused.message
    assert "\n" not in refused.message

    run_dir = run_dir_of(events)
    hparams = [r for r in read_metrics(run_dir) if r.get("type") == "hparam"]
    assert len(hparams) == 1
    assert hparams[0]["name"] == "optim.lr" and hparams[0]["step"] == 6
    assert hparams[0]["old"] == 1e-3 and hparams[0]["new"] == 0.01
    assert [r["lr"] for r in train_records(run_dir) if r["step"] >= 6] == [0.01] * 7
    assert read_run_info(run_dir)["hparams"]["optim.lr"] == 0.01
    ckpts = list_checkpoints(run_dir / "checkpoints")
    assert [c.step for c in ckpts] == [10, 12]
    assert all(c.meta["hparams"]["optim.lr"] == 0.01 for c in ckpts)


def test_live_weight_decay_grad_clip_and_eval_interval(tmp_path, monkeypatch):
    clips: list[float] = []
    real_clip = torch.nn.utils.clip_grad_norm_

    def spy(parameters, max_norm, *args, **kwargs):
        clips.append(max_norm)
        return real_clip(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    s = tiny_session(tmp_path, max_steps=12, eval_interval=0)
    s.optim.weight_decay, s.optim.grad_clip = 0.1, 1.0

    def hook(engine: Engine, event: msg.Event) -> None:
        if isinstance(event, msg.StepMetrics) and event.step == 3:
            engine.commands.put(msg.SetHparam("optim.weight_decay", 0.5))
            engine.commands.put(msg.SetHparam("optim.grad_clip", 0.05))
            engine.commands.put(msg.SetHparam("train.eval_interval", 4))

    engine, final, events = run(s, hook)
    assert final == "finished"
    assert not of(events, msg.Error)
    changed = {e.name: (e.step, e.old, e.new) for e in of(events, msg.HparamChanged)}
    assert changed == {"optim.weight_decay": (4, 0.1, 0.5), "optim.grad_clip": (4, 1.0, 0.05),
                       "train.eval_interval": (4, 0, 4)}

    groups = {g["name"]: g["weight_decay"] for g in engine.trainer.optimizer.param_groups}
    assert groups == {"decay": 0.5, "no_decay": 0.0}
    assert clips == [1.0] * 3 + [0.05] * 9  # the new clip is what steps 4.. used
    norms = [e.grad_norm for e in of(events, msg.StepMetrics) if e.step >= 4]
    assert all(math.isfinite(n) and n > 0.05 for n in norms)  # reported before clipping
    assert [e.step for e in of(events, msg.EvalMetrics)] == [4, 8, 12]
    assert read_run_info(run_dir_of(events))["hparams"] == {
        "optim.lr": 1e-2, "optim.weight_decay": 0.5, "optim.grad_clip": 0.05,
        "train.eval_interval": 4}


def test_pause_holds_training_until_resume(tmp_path):
    s = tiny_session(tmp_path, max_steps=8)
    arrived: dict[int, float] = {}
    timers: list[threading.Timer] = []

    def hook(engine: Engine, event: msg.Event) -> None:
        if isinstance(event, msg.StepMetrics):
            arrived[event.step] = time.monotonic()
            if event.step == 3:
                engine.commands.put(msg.Pause())
                timer = threading.Timer(0.3, engine.commands.put, args=(msg.Resume(),))
                timers.append(timer)
                timer.start()

    _, final, events = run(s, hook)
    assert final == "finished"
    states = [e.state for e in of(events, msg.Status)]
    assert [st for st in states if st != "preparing"] == ["running", "paused", "running",
                                                          "finished"]
    # The order of what happened: step 3, paused, running again, then step 4.
    kinds = [(type(e).__name__, getattr(e, "step", getattr(e, "state", None))) for e in events]
    i = kinds.index(("StepMetrics", 3))
    assert kinds[i + 1:i + 4] == [("Status", "paused"), ("Status", "running"),
                                  ("StepMetrics", 4)]
    assert arrived[4] - arrived[3] >= 0.25  # nothing ran while paused...
    steps = {e.step: e for e in of(events, msg.StepMetrics)}
    assert steps[4].elapsed - steps[3].elapsed < 0.2  # ...and the pause is not training time
    assert steps[8].elapsed < arrived[8] - arrived[1] - 0.25 + steps[1].elapsed
    for timer in timers:
        timer.join()


def test_a_sweep_during_training_says_training_waits_and_takes_stop_between_levels(tmp_path):
    """Workbench work in the engine of a running training holds the training: the engine says
    so (TrainingWaits, with the sweep's levels done), and a Pause or Stop sent meanwhile is
    answered after the level in progress, not after the whole sweep."""
    _, final, events = run(tiny_session(tmp_path / "a", name="a", max_steps=6))
    assert final == "finished"
    model_run = run_dir_of(events)
    levels = (0.0, 0.3, 0.6, 0.9)

    def hook(engine: Engine, event: msg.Event) -> None:
        if isinstance(event, msg.StepMetrics) and event.step == 2:
            engine.commands.put(msg.LoadRun(str(model_run)))
            engine.commands.put(msg.Sweep("magnitude", levels, request_id=7))
        elif isinstance(event, msg.SweepPointMeasured) and event.sparsity == 0.3:
            engine.commands.put(msg.Pause())
            engine.commands.put(msg.Stop())

    s = tiny_session(tmp_path / "b", name="b", max_steps=40)
    _, final, events = run(s, hook)
    assert final == "stopped"
    kinds = [(type(e).__name__, getattr(e, "what", getattr(e, "state", None)),
              getattr(e, "sparsity", None)) for e in events]
    start = kinds.index(("TrainingWaits", "loading a model", None))
    assert ("TrainingWaits", "pruning sweep", None) in kinds[start:]
    waits = [(e.what, e.done, e.total) for e in of(events, msg.TrainingWaits)]
    assert [w for w in waits if w[0] == "pruning sweep" and w[2]] == [
        ("pruning sweep", i, len(levels)) for i in range(1, len(levels) + 1)]
    assert waits.count(("", 0, 0)) == 2  # the training goes on after each command
    # Pause and Stop, sent while the level 0.3 was measured, answered right after it: before
    # the levels left, not after the whole sweep.
    second = kinds.index(("SweepPointMeasured", None, 0.3))
    assert kinds[second + 1:second + 6] == [
        ("TrainingWaits", "pruning sweep", None), ("Status", "paused", None),
        ("Status", "stopping", None), ("SweepPointMeasured", None, 0.6),
        ("TrainingWaits", "pruning sweep", None)]
    points = of(events, msg.SweepPointMeasured)
    assert [p.sparsity for p in points] == list(levels) and points[-1].last  # (whole sweep)
    assert {p.request_id for p in points} == {7}
    # No training step while the sweep ran; the run then stopped with a checkpoint.
    i_first, i_last = (events.index(p) for p in (points[0], points[-1]))
    assert not of(events[i_first:i_last], msg.StepMetrics)
    assert of(events, msg.CheckpointSaved)


# --------------------------------------------------------------------------- checkpoints


def test_checkpoints_keep_the_last_ones_and_the_best(tmp_path):
    s = tiny_session(tmp_path, max_steps=20, checkpoint_interval=5, keep_last=2,
                     eval_interval=5)
    _, final, events = run(s)
    assert final == "finished"
    assert [e.step for e in of(events, msg.CheckpointSaved)] == [5, 10, 15, 20]
    run_dir = run_dir_of(events)
    steps = [c.step for c in list_checkpoints(run_dir / "checkpoints")]
    assert len(steps) <= 3 and steps[-2:] == [15, 20]
    folders = [p.name for p in (run_dir / "checkpoints").iterdir()]
    assert sorted(folders) == [f"step-{step:07d}" for step in steps]  # no leftovers

    evals = [e for e in of(events, msg.EvalMetrics) if e.step > 0]
    assert [e.step for e in evals] == [5, 10, 15, 20]
    best = min(evals, key=lambda e: e.loss)
    info = read_run_info(run_dir)
    assert info["best_step"] == best.step and info["best_val_loss"] == best.loss
    assert best.step in steps
    saved_best = [e.step for e in of(events, msg.CheckpointSaved) if e.best]
    assert saved_best[-1] == best.step
    assert info["status"] == "finished" and info["step"] == 20


def test_resume_after_a_crash_repairs_metrics_and_finishes(tmp_path):
    s = tiny_session(tmp_path, max_steps=20, checkpoint_interval=5)
    crashed = {"done": False}

    def hook(engine: Engine, event: msg.Event) -> None:
        if isinstance(event, msg.StepMetrics) and event.step == 13 and not crashed["done"]:
            crashed["done"] = True
            raise RuntimeError("simulated crash")

    _, final, events = run(s, hook)
    assert final == "failed"
    (error,) = of(events, msg.Error)
    assert "simulated crash" in error.message and "traceback" in error.details
    run_dir = run_dir_of(events)
    ckpt_root = run_dir / "checkpoints"
    assert latest_checkpoint(ckpt_root).step == 10
    assert max(r["step"] for r in train_records(run_dir)) == 13  # records past the checkpoint

    with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"type": "train", "step": 14, "lo')  # torn by the crash
    stray = ckpt_root / ".tmp-step-0000015-x"
    stray.mkdir()
    (stray / "model.safetensors").write_bytes(b"half")

    _, final, events = run(s, resume=run_dir)
    assert final == "finished"
    assert of(events, msg.RunStarted)[0].start_step == 10
    assert not of(events, msg.Error)
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]  # every line parses
    steps = [r["step"] for r in records if r["type"] == "train"]
    assert steps == list(range(1, 21))
    assert not stray.exists()
    assert latest_checkpoint(ckpt_root).step == 20
    assert read_run_info(run_dir)["status"] == "finished"


def test_each_eval_emits_and_records_a_short_sample_of_the_models_text(tmp_path):
    s = tiny_session(tmp_path, max_steps=8, eval_interval=4)
    s.generate.temperature, s.generate.max_tokens = 0.0, 500  # greedy; capped to a few
    engine, final, events = run(s)
    assert final == "finished"
    samples = of(events, msg.EvalSample)
    assert [e.step for e in samples] == [0, 4, 8]  # one per evaluation
    evals = [i for i, e in enumerate(events) if isinstance(e, msg.EvalMetrics)]
    assert [events[i + 1] for i in evals] == samples  # each right after its figures
    val = engine.trainer.dataset.split_tokens("val")[:8].tolist()
    prompt = engine.trainer.dataset.tokenizer.decode(val)
    for sample in samples:
        assert sample.prompt == prompt and len(sample.text) == 32  # 32 char tokens
    records = [r for r in read_metrics(run_dir_of(events)) if r["type"] == "sample"]
    assert [(r["step"], r["prompt"], r["text"]) for r in records] == \
        [(e.step, e.prompt, e.text) for e in samples]


def test_eval_samples_leave_an_exact_resume_exact(tmp_path):
    """Sampling at evaluations draws from its own generator: with and without evaluations,
    the training's losses are the same."""
    with_evals = run(tiny_session(tmp_path / "a", max_steps=8, eval_interval=2))[2]
    without = run(tiny_session(tmp_path / "b", max_steps=8, eval_interval=0))[2]
    s = tiny_session(tmp_path / "c", max_steps=8, eval_interval=2)
    s.generate.temperature = 1.0  # sampling, not greedy
    sampled = run(s)[2]
    losses = [[e.loss for e in of(events, msg.StepMetrics)]
              for events in (with_evals, without, sampled)]
    assert losses[0] == losses[1] == losses[2]


def test_evaluate_during_training_reports_the_model_as_it_is_now(tmp_path):
    """An Evaluate while the run trains answers with the full report of the training model
    (the whole val split), and the run goes on to its end."""
    s = tiny_session(tmp_path, max_steps=12)

    def hook(engine: Engine, event: msg.Event) -> None:
        if isinstance(event, msg.StepMetrics) and event.step == 4:
            engine.commands.put(msg.Evaluate("val"))
            engine.commands.put(msg.Evaluate("val", iters=2))

    engine, final, events = run(s, hook)
    assert final == "finished" and not of(events, msg.Error)
    full, sampled = of(events, msg.Evaluated)
    assert full.step == sampled.step == 4  # handled before step 5: the model after step 4
    assert Path(full.source) == run_dir_of(events)
    n_val = len(engine.trainer.dataset.split_tokens("val")) - 1
    assert full.scope == f"full val split: {n_val:,} tokens" and full.figures["tokens"] == n_val
    assert sampled.scope == "sampled 2 batches of the val split: 256 tokens"
    assert 0 < full.figures["macro_f1"] <= 1 and full.figures["batches"] is None
    assert [e.step for e in of(events, msg.StepMetrics)][-1] == 12


def test_engine_states_are_one_enum_equal_to_their_old_strings():
    import json

    from core.values import EngineState

    status = msg.Status("failed", "from a sender that wrote a string")
    assert status.state is EngineState.FAILED and status.state == "failed"
    assert json.dumps({"status": EngineState.STOPPED}) == '{"status": "stopped"}'
    assert f"{EngineState.RUNNING}" == "running" and str(EngineState.PAUSED) == "paused"
    assert [s for s in EngineState if s.busy] == ["preparing", "running", "paused", "stopping"]
    # ("lost": a job whose heartbeat stopped, issue 12; a viewer's state, never the engine's)
    assert [s for s in EngineState if s.ended] == ["stopped", "finished", "failed", "lost"]


def test_dispatch_is_a_table_with_one_handler_per_command():
    from core.engine import _HANDLERS

    commands = {c for c in vars(msg).values()
                if isinstance(c, type) and issubclass(c, msg.Command) and c is not msg.Command}
    assert set(_HANDLERS) == commands


def test_a_failed_start_answers_with_the_start_request_id(tmp_path):
    """A training's failure is the answer to its Start: the Error carries the Start's id."""
    s = tiny_session(tmp_path)
    s.data.corpus = "no-such-corpus.txt"
    events: list[msg.Event] = []
    engine = Engine(s, events.append)
    start = msg.Start()
    engine.commands.put(start)
    engine.commands.put(msg.Shutdown())
    engine.serve()
    (error,) = of(events, msg.Error)
    assert error.fatal and error.request_id == start.request_id != 0
