"""A run that collapses to uniform predictions is flagged; Adam's default decay no longer
collapses a word-level LSTM (issue 10, item 1)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from helpers.cli import llmlab
from helpers.sessions import tiny_session

from core import messages as msg
from core.collapse import CollapseWatch
from core.engine import Engine
from core.runs import read_metrics
from core.session import Session, save_session

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def train(session: Session) -> list[msg.Event]:
    events: list[msg.Event] = []
    assert Engine(session, events.append).train() == "finished"
    return events


def of(events: list[msg.Event], cls: type) -> list:
    return [e for e in events if isinstance(e, cls)]


# --------------------------------------------------------------------------- the rule

def test_uniform_loss_with_vanishing_gradients_for_two_evals_is_flagged_once() -> None:
    watch = CollapseWatch(vocab_size=8000)
    uniform = math.log(8000)
    assert watch.observe(0, uniform, None) is None  # the evaluation before any step
    assert watch.observe(100, uniform, 1e-16) is None  # one evaluation is not a trend
    text = watch.observe(150, uniform, 1e-16)
    assert text is not None and "collapsed" in text and "loss 8.9872 = ln(vocab 8000)" in text
    assert "\n" not in text
    assert watch.observe(200, uniform, 1e-16) is None  # told once per collapse


def test_an_untrained_model_near_uniform_with_healthy_gradients_is_not_flagged() -> None:
    watch = CollapseWatch(vocab_size=500)
    for step in (50, 100, 150):
        assert watch.observe(step, math.log(500) - 0.01, 0.8) is None


def test_a_low_loss_with_small_gradients_is_a_converged_run_not_a_collapse() -> None:
    watch = CollapseWatch(vocab_size=500)
    for step in (50, 100, 150):
        assert watch.observe(step, 1.2, 1e-6) is None


def test_a_recovered_run_that_collapses_again_is_told_again() -> None:
    watch = CollapseWatch(vocab_size=100, patience=1)
    assert watch.observe(1, math.log(100), 0.0) is not None
    assert watch.observe(2, 2.0, 0.5) is None
    assert watch.observe(3, math.log(100), 0.0) is not None


# --------------------------------------------------------------------------- a real run

def collapsing_lstm(folder: Path, weight_decay: float) -> Session:
    """A one-layer LSTM without biases and an untied head (hidden != embedding), trained by
    plain SGD with a decay of lr*wd = 0.5 a step: every decayed weight halves each step, faster than
    SGD's small steps (lr 0.01) can restore it, so the hidden state and the logits go to 0
    (uniform predictions) and every gradient with them. (Adam's steps are ~lr whatever the
    gradient, so AdamW would keep weights at ~1/wd instead.)"""
    s = tiny_session(folder, arch="lstm", max_steps=40, eval_interval=10)
    s.model.n_hidden, s.model.bias = 48, False
    s.optim.name, s.optim.lr, s.optim.schedule = "sgd", 1e-2, "constant"
    s.optim.momentum = 0.0
    s.optim.weight_decay = weight_decay
    return s


def test_a_run_driven_to_collapse_is_flagged_in_events_and_metrics(tmp_path) -> None:
    events = train(collapsing_lstm(tmp_path, weight_decay=50.0))
    warnings = [w.message for w in of(events, msg.Warning) if "collapsed" in w.message]
    assert len(warnings) == 1, [e for e in events if not isinstance(e, msg.StepMetrics)]
    decay = [w.message for w in of(events, msg.Warning) if "a step" in w.message]
    assert len(decay) == 1 and "shrinks the weights by 50% a step" in decay[0]
    assert events.index(of(events, msg.Warning)[0]) < events.index(of(events, msg.StepMetrics)[0])
    run_dir = Path(of(events, msg.RunStarted)[0].run_dir)
    records = [r for r in read_metrics(run_dir) if r.get("type") == "warning"]
    assert [r["message"] for r in records] == warnings


def test_the_same_run_without_the_decay_is_not_flagged(tmp_path) -> None:
    events = train(collapsing_lstm(tmp_path, weight_decay=0.0))
    assert not of(events, msg.Warning)


def word_lstm(folder: Path, weight_decay: float) -> Session:
    """The issue's recipe in small: word tokens, a 2-layer LSTM, Adam. With torch's L2 decay of
    0.1 this run sat at its initial loss near ln(2000) with gradients ~3e-5 (collapsed)."""
    s = tiny_session(folder, arch="lstm", max_steps=60, eval_interval=30, log_interval=10)
    s.data.corpus, s.data.tokenizer, s.data.vocab_size = "sample:tiny-tales", "word", 2000
    s.model.n_layer, s.model.n_embd, s.model.n_hidden = 2, 32, 64
    s.optim.name, s.optim.lr, s.optim.warmup_steps = "adam", 1e-2, 5
    s.optim.weight_decay = weight_decay
    return s


def test_adam_with_the_default_decay_learns_like_adam_without_decay(tmp_path) -> None:
    assert Session().optim.weight_decay == 0.1  # the default the recipe used
    decayed = train(word_lstm(tmp_path / "a", weight_decay=0.1))
    plain = train(word_lstm(tmp_path / "b", weight_decay=0.0))
    vocab = of(decayed, msg.RunStarted)[0].vocab_size
    final = {name: of(events, msg.EvalMetrics)[-1].loss
             for name, events in (("decayed", decayed), ("plain", plain))}
    assert final["decayed"] < 0.9 * math.log(vocab), final  # it learned
    assert final["decayed"] == pytest.approx(final["plain"], rel=0.02), final
    assert not of(decayed, msg.Warning)


def test_headless_training_prints_the_collapse_warning(tmp_path) -> None:
    settings = {"data.corpus": "sample:synthetic", "model.arch": "lstm", "model.n_layer": 1,
                "model.n_embd": 32, "model.n_hidden": 48, "model.bias": "false",
                "model.context": 16, "optim.name": "sgd", "optim.lr": 1e-2,
                "optim.momentum": 0, "optim.weight_decay": 50, "optim.schedule": "constant",
                "optim.warmup_steps": 2, "train.max_steps": 40, "train.eval_interval": 10,
                "train.batch_size": 8, "train.eval_iters": 4, "train.seed": 1}
    save_session(Session(name="s"), tmp_path / "s.toml")
    out = llmlab(tmp_path, "train", "s.toml", sets=[f"{k}={v}" for k, v in settings.items()],
                 columns=300)
    assert out.returncode == 0, out.stderr
    assert "warning: step 30: collapsed: val loss 2.8332 = ln(vocab 17)" in out.stdout + out.stderr
