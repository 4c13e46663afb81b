"""Gradual pruning during training (Zhu & Gupta's cubic schedule), resumable exactly."""

from __future__ import annotations

import queue

import pytest

from core import messages as msg
from core.engine import Engine
from core.errors import SessionError
from core.inference import load_run
from core.prune import cubic_sparsity, sparsity_report
from core.runs import read_metrics
from core.session import Session, session_from_dict

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def gradual_session(tmp_path, name: str) -> Session:
    s = Session(name=name)
    s.base_dir = tmp_path
    s.data.corpus = "sample:synthetic"
    s.model.n_layer, s.model.n_embd, s.model.n_head, s.model.context = 1, 32, 2, 16
    s.train.max_steps, s.train.eval_interval, s.train.log_interval = 40, 20, 1
    s.train.batch_size, s.train.checkpoint_interval = 8, 0
    s.optim.warmup_steps = 2
    c = s.compress
    c.schedule, c.sparsity, c.begin_step, c.end_step, c.prune_every = "gradual", 0.8, 5, 30, 5
    return s


def test_masks_follow_the_cubic_schedule_and_survive_training(tmp_path):
    events: list[msg.Event] = []
    Engine(gradual_session(tmp_path, "g"), events.append).train()
    changes = [e for e in events if isinstance(e, msg.SparsityChanged)]
    assert [e.step for e in changes] == [5, 10, 15, 20, 25, 30]
    for e in changes:
        assert e.target == pytest.approx(cubic_sparsity(e.step, 0.0, 0.8, 5, 30))
        assert e.sparsity == pytest.approx(e.target, abs=0.01)
    assert [e.sparsity for e in changes] == sorted(e.sparsity for e in changes)
    run_dir = next(e.run_dir for e in events if isinstance(e, msg.RunStarted))
    assert [r["step"] for r in read_metrics(run_dir) if r["type"] == "prune"] == [
        5, 10, 15, 20, 25, 30]
    # ten more steps of training after end_step did not regrow anything
    trained = load_run(run_dir, "latest")
    assert sparsity_report(trained.model).sparsity == pytest.approx(0.8, abs=0.01)
    assert "weight_orig" not in "".join(trained.model.state_dict())


def test_stop_mid_schedule_and_resume_is_exact(tmp_path):
    straight: dict[int, float] = {}
    Engine(gradual_session(tmp_path / "a", "a"),
           lambda e: isinstance(e, msg.StepMetrics) and straight.update({e.step: e.loss})
           ).train()
    resumed: dict[int, float] = {}
    commands: queue.Queue = queue.Queue()
    run_dir = []

    def emit(e):
        if isinstance(e, msg.RunStarted):
            run_dir.append(e.run_dir)
        if isinstance(e, msg.StepMetrics):
            resumed[e.step] = e.loss
            if e.step == 17:  # between the masks of step 15 and step 20
                commands.put(msg.Stop())

    assert Engine(gradual_session(tmp_path / "b", "b"), emit, commands).train() == "stopped"
    assert Engine(gradual_session(tmp_path / "b", "b"), emit).train(resume=run_dir[0]) \
        == "finished"
    assert resumed[40] == straight[40]


def test_gradual_schedule_is_validated():
    with pytest.raises(SessionError) as info:
        session_from_dict({"train": {"max_steps": 200},
                           "compress": {"schedule": "gradual", "begin_step": 90,
                                        "end_step": 50}})
    assert info.value.problems == [
        "compress.end_step: gradual pruning needs begin_step < end_step <= train.max_steps "
        "(90, 50, 200)"]
