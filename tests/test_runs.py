"""Run folders: unique ids, the rank-aware writer, metrics that survive a crash, best-checkpoint
tracking, summaries of hand-made runs, and finding a run from what a user types."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import torch

from core.checkpoint import list_checkpoints
from core.errors import LlmlabError
from core.models import build_model
from core.run_writer import RunWriter
from core.runs import (
    find_run,
    has_checkpoint,
    list_runs,
    load_run_session,
    new_run_dir,
    read_metrics,
    read_run_info,
    restart_session,
    run_status,
)
from core.session import ModelConfig, Session, save_session
from core.tokenizers import CharTokenizer, load_tokenizer

NOW = datetime(2025, 3, 1, 12, 30, 45)


def tiny_model() -> torch.nn.Module:
    return build_model(ModelConfig(arch="gpt", n_layer=1, n_head=2, n_embd=16, context=8), 7)


def test_new_run_dir_is_unique(tmp_path: Path) -> None:
    made = [new_run_dir(tmp_path / "runs", "tales", NOW) for _ in range(3)]
    assert [p.name for p in made] == ["20250301-123045", "20250301-123045-2", "20250301-123045-3"]
    assert all(p.is_dir() and p.parent == tmp_path / "runs" / "tales" for p in made)
    assert new_run_dir(tmp_path / "runs", "tales").is_dir()  # now: the current time


def test_disabled_writer_writes_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    writer = RunWriter(run_dir, enabled=False)
    writer.write_session(Session())
    writer.write_tokenizer(CharTokenizer("ab"))
    writer.update_info(status="running")
    writer.log({"type": "train", "step": 1})
    path, best = writer.save_checkpoint(1, tiny_model(), {}, {}, keep_last=1, val_loss=1.0)
    writer.truncate_metrics_after(0)
    writer.close()
    assert path == run_dir / "checkpoints" / "step-0000001" and best is False
    assert list(run_dir.iterdir()) == []


def test_writer_files(tmp_path: Path) -> None:
    run_dir = new_run_dir(tmp_path, "tales", NOW)
    writer = RunWriter(run_dir)
    session = Session(name="tales")
    writer.write_session(session)
    writer.write_tokenizer(CharTokenizer("héllo"))
    writer.update_info(status="running", step=0)
    writer.update_info(step=10, params=1234)
    info = read_run_info(run_dir)
    assert {k: info[k] for k in ("status", "step", "params")} == {
        "status": "running", "step": 10, "params": 1234}
    assert set(info) == {"status", "step", "params", "pid", "host", "pid_start"}  # lost?
    tokenizer = load_tokenizer(run_dir)
    assert tokenizer.decode(tokenizer.encode("héllo")) == "héllo"
    frozen = load_run_session(run_dir)
    assert frozen == session and frozen.base_dir == run_dir


def test_metrics_append_flush_and_torn_last_line(tmp_path: Path) -> None:
    writer = RunWriter(tmp_path)
    writer.log({"type": "train", "step": 1, "loss": 3.0})
    writer.log({"type": "train", "step": 2, "loss": torch.tensor(2.5)})
    assert read_metrics(tmp_path) == [{"type": "train", "step": 1, "loss": 3.0},
                                      {"type": "train", "step": 2, "loss": 2.5}]  # not closed
    writer.close()
    with open(tmp_path / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"type": "train", "st')  # killed mid-line
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]
    resumed = RunWriter(tmp_path)
    resumed.log({"type": "train", "step": 3})  # starts on its own line
    resumed.close()
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    assert read_metrics(tmp_path / "nope") == []


def test_truncate_metrics_after(tmp_path: Path) -> None:
    writer = RunWriter(tmp_path)
    for step in range(1, 7):
        writer.log({"type": "train", "step": step})
    writer.log({"type": "eval", "step": 4, "val_loss": 2.0})
    writer.log({"note": "no step"})
    (tmp_path / "metrics.jsonl").open("a").write("{torn")
    writer.truncate_metrics_after(3)
    writer.log({"type": "train", "step": 4})  # the resumed run carries on in the same file
    writer.close()
    records = read_metrics(tmp_path)
    assert records == [{"type": "train", "step": 1}, {"type": "train", "step": 2},
                       {"type": "train", "step": 3}, {"note": "no step"},
                       {"type": "train", "step": 4}]
    assert "torn" not in (tmp_path / "metrics.jsonl").read_text()


def test_best_checkpoint_is_tracked_and_kept(tmp_path: Path) -> None:
    writer = RunWriter(tmp_path)
    model = tiny_model()
    results = [writer.save_checkpoint(step, model, {"step": step}, {}, keep_last=2,
                                      val_loss=loss)[1]
               for step, loss in [(100, 3.0), (200, 2.0), (300, 2.5), (400, None), (500, 2.2)]]
    assert results == [True, True, False, False, False]
    info = read_run_info(tmp_path)
    assert info["best_step"] == 200 and info["best_val_loss"] == 2.0
    assert [c.step for c in list_checkpoints(tmp_path / "checkpoints")] == [200, 400, 500]
    assert list_checkpoints(tmp_path / "checkpoints")[0].meta["val_loss"] == 2.0
    # a writer for the resumed run knows the best so far
    path, best = RunWriter(tmp_path).save_checkpoint(600, model, {}, {}, keep_last=1,
                                                     val_loss=1.5)
    assert best and path == tmp_path / "checkpoints" / "step-0000600"
    assert [c.step for c in list_checkpoints(tmp_path / "checkpoints")] == [600]


# --------------------------------------------------------------------------- listing, finding

def make_run(root: Path, session: str, run_id: str, info: dict | None = None,
             metrics: list[dict] | None = None, max_steps: int = 2000) -> Path:
    """A run folder written by hand, as a crashed or older run might have left it."""
    run_dir = root / session / run_id
    run_dir.mkdir(parents=True)
    s = Session(name=session)
    s.train.max_steps = max_steps
    s.model.arch = "lstm"
    save_session(s, run_dir / "session.toml")
    if info is not None:
        (run_dir / "run.json").write_text(json.dumps(info))
    if metrics is not None:
        lines = [json.dumps(r) for r in metrics]
        (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n{torn")
    return run_dir


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    metrics = [{"type": "train", "step": 10, "tokens_per_s": 100.0},
               {"type": "eval", "step": 10, "val_loss": 2.0},
               {"type": "train", "step": 20, "tokens_per_s": 300.0},
               {"type": "train", "step": 30, "tokens_per_s": 200.0},
               {"type": "eval", "step": 30, "val_loss": 1.8}]
    make_run(root, "tales", "20250101-090000", {
        "session": "tales", "arch": "gpt", "params": 5000, "max_steps": 100,
        "created": "2025-01-01T09:00:00", "status": "finished", "best_val_loss": 1.8,
        "best_step": 30}, metrics)
    make_run(root, "tales", "20250102-090000", {"status": "running", "step": 40})
    make_run(root, "markov", "20241231-230000", max_steps=50)  # no run.json, no metrics
    (root / "tales" / "not-a-run").mkdir()
    (root / "stray.txt").write_text("")
    return root


def test_list_runs_summaries(runs: Path) -> None:
    summaries = list_runs(runs)
    assert [(s.session, s.run_id) for s in summaries] == [
        ("tales", "20250102-090000"), ("tales", "20250101-090000"),
        ("markov", "20241231-230000")]
    done, crashed = summaries[1], summaries[2]
    assert done.path == runs / "tales" / "20250101-090000"
    assert (done.created, done.arch, done.params, done.steps, done.max_steps) == (
        "2025-01-01T09:00:00", "gpt", 5000, 30, 100)
    assert done.best_val_loss == 1.8 and done.tokens_per_s == 200.0  # the median
    assert done.status == "finished"
    running = summaries[0]
    assert (running.steps, running.status, running.arch, running.max_steps) == (
        40, "running", "lstm", 2000)  # step from run.json, the rest from session.toml
    assert (crashed.created, crashed.steps, crashed.max_steps, crashed.status) == (
        "2024-12-31T23:00:00", 0, 50, "unknown")
    assert crashed.best_val_loss is None and crashed.tokens_per_s is None and crashed.params == 0
    assert [s.run_id for s in list_runs(runs, "markov")] == ["20241231-230000"]
    assert list_runs(runs, "nope") == [] and list_runs(runs / "nope") == []


def test_find_run(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    newest = runs / "tales" / "20250102-090000"
    assert find_run("latest", runs) == newest
    assert find_run("tales", runs) == newest
    assert find_run("tales/20250101-090000", runs) == runs / "tales" / "20250101-090000"
    assert find_run("markov", runs) == runs / "markov" / "20241231-230000"
    assert find_run(str(runs / "markov" / "20241231-230000"), runs / "elsewhere") == \
        runs / "markov" / "20241231-230000"
    monkeypatch.chdir(runs.parent)
    assert find_run("runs/tales/20250101-090000", runs / "elsewhere") == \
        Path("runs/tales/20250101-090000")


@pytest.mark.parametrize("spec", ["nope", "tales/19990101-000000", "tales/not-a-run", "", "latest"])
def test_find_run_error_is_one_line(tmp_path: Path, runs: Path, spec: str) -> None:
    root = tmp_path / "empty" if spec == "latest" else runs
    with pytest.raises(LlmlabError) as err:
        find_run(spec, root)
    message = str(err.value)
    assert "\n" not in message and (spec or "no run") in message


# --------------------------------------------------------------------------- lost runs


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def lost_run(runs_root: Path, pid: int, host: str | None = None) -> Path:
    """A run folder as a training killed at step 40, before its first checkpoint, leaves it."""
    import socket

    run_dir = new_run_dir(runs_root, "tales", NOW)
    save_session(Session(name="tales"), run_dir / "session.toml")
    info = {"session": "tales", "arch": "gpt", "params": 1000, "max_steps": 100,
            "created": "2025-03-01T12:30:45", "status": "running", "step": 40, "pid": pid,
            "host": host or socket.gethostname()}
    (run_dir / "run.json").write_text(json.dumps(info))
    (run_dir / "metrics.jsonl").write_text(
        "".join(json.dumps({"type": "train", "step": s, "loss": 2.0}) + "\n"
                for s in (10, 20, 30, 40)))
    return run_dir


def test_writer_records_its_pid_and_host_when_the_run_starts(tmp_path: Path) -> None:
    import os
    import socket

    run_dir = new_run_dir(tmp_path, "tales", NOW)
    RunWriter(run_dir).update_info(status="running", step=0)
    info = read_run_info(run_dir)
    assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
    assert run_status(run_dir) == "running"  # this process lives


def test_a_running_run_whose_process_died_reads_lost(tmp_path: Path) -> None:
    from core.runs import LOST, LOST_NO_CHECKPOINT

    run_dir = lost_run(tmp_path, dead_pid())
    assert run_status(run_dir) == LOST_NO_CHECKPOINT == "lost, no checkpoint"
    assert [r.status for r in list_runs(tmp_path)] == [LOST_NO_CHECKPOINT]
    assert not has_checkpoint(run_dir)
    step = run_dir / "checkpoints" / "step-0000020"
    step.mkdir(parents=True)
    for name in ("model.safetensors", "state.pt"):
        (step / name).write_text("")
    assert run_status(run_dir) == LOST_NO_CHECKPOINT  # incomplete: no meta.json yet
    (step / "meta.json").write_text("{}")
    assert has_checkpoint(run_dir) and run_status(run_dir) == LOST  # `u` resumes it


def test_a_run_written_elsewhere_or_by_a_live_process_stays_running(tmp_path: Path) -> None:
    import os

    assert run_status(lost_run(tmp_path / "a", dead_pid(), host="another-machine")) == "running"
    alive = lost_run(tmp_path / "b", os.getpid())
    assert run_status(alive) == "running"
    # ... unless the live process only reuses the pid of the dead writer (a later start).
    RunWriter(alive).update_info(status="running")
    info = read_run_info(alive)
    assert run_status(alive) == "running"
    if isinstance(info["pid_start"], int):  # (Linux)
        info["pid_start"] -= 1
        (alive / "run.json").write_text(json.dumps(info))
        assert run_status(alive) == "lost, no checkpoint"
    old = lost_run(tmp_path / "c", 0)
    info = read_run_info(old)
    del info["pid"], info["host"]  # a run written before pids were recorded
    (old / "run.json").write_text(json.dumps(info))
    assert run_status(old) == "running"


def test_restart_session_starts_next_to_the_lost_run(tmp_path: Path) -> None:
    run_dir = lost_run(tmp_path / "runs", dead_pid())
    session = restart_session(run_dir)
    assert session.name == "tales"
    assert session.resolve(session.train.runs_dir) == (tmp_path / "runs").absolute()
