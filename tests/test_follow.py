"""Following a run folder (core.follow) the way a viewer meets it: a job appends to
metrics.jsonl a line at a time, may be resumed (the file is rewritten shorter) and may have
logged a million steps before anyone attaches. Torch-free: the app's UI process uses it."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import messages as msg
from core.follow import MetricsTail, RunFollower, record_event
from core.runs import INFO_FILE, METRICS_FILE


def line(record: dict) -> bytes:
    return (json.dumps(record) + "\n").encode()  # (as RunWriter writes them: json.dumps)


def train(step: int, loss: float = 2.0) -> dict:
    return {"type": "train", "step": step, "tokens": 64 * step, "loss": loss, "lr": 1e-3,
            "grad_norm": 0.5, "tokens_per_s": 1000.0, "mfu": 0.01, "elapsed": step / 10,
            "time": 1.0}


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def make_run(folder: Path, records: list[dict] = (), **info) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / INFO_FILE).write_text(json.dumps({
        "session": "s", "arch": "gpt", "params": 1000, "max_steps": 100, "step": 0,
        "status": "finished", **info}))
    (folder / METRICS_FILE).write_bytes(b"".join(line(r) for r in records))
    return folder


def test_a_partial_last_line_is_read_only_once_it_is_complete(tmp_path: Path) -> None:
    path = tmp_path / METRICS_FILE
    whole = line(train(1))
    path.write_bytes(whole + line(train(2))[:20])
    tail = MetricsTail(path)
    lines, restarted = tail.read_lines()
    assert [json.loads(x)["step"] for x in lines] == [1] and not restarted
    assert tail.read_lines() == ([], False)  # (the half line waits)
    append(path, line(train(2))[20:-1])
    assert tail.read_lines() == ([], False)  # (still no newline)
    append(path, b"\n" + line(train(3)))
    lines, restarted = tail.read_lines()
    assert [json.loads(x)["step"] for x in lines] == [2, 3] and not restarted
    assert tail.read_lines() == ([], False)  # never a byte twice


def test_a_controller_skips_to_the_end_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / METRICS_FILE
    path.write_bytes(b"".join(line(train(s)) for s in range(1, 1000)) + line(train(1000))[:9])
    tail = MetricsTail(path)
    tail.skip_to_end()
    assert tail.offset == path.stat().st_size  # (not read: a long run's file may be GBs)
    append(path, line(train(1000))[9:] + line(train(1001)))
    lines, restarted = tail.read_lines()
    rest, *new = lines
    assert not restarted and [json.loads(x)["step"] for x in new] == [1001]
    with pytest.raises(ValueError):  # (the rest of the line being written: no record)
        json.loads(rest)


def test_a_replaced_or_shrunk_file_starts_over(tmp_path: Path) -> None:
    path = tmp_path / METRICS_FILE
    path.write_bytes(b"".join(line(train(s)) for s in range(1, 6)))
    tail = MetricsTail(path)
    assert len(tail.read_lines()[0]) == 5
    # Shrunk in place (a resume drops the steps it will redo), then grown a little.
    with open(path, "r+b") as f:
        f.truncate(len(line(train(1))) + len(line(train(2))))
    append(path, line(train(3, loss=1.5)))
    lines, restarted = tail.read_lines()
    assert restarted and [json.loads(x)["step"] for x in lines] == [1, 2, 3]
    assert json.loads(lines[-1])["loss"] == 1.5
    # Replaced (another inode), even by a longer file.
    other = tmp_path / "new.jsonl"
    other.write_bytes(b"".join(line(train(s, loss=0.5)) for s in range(1, 9)))
    os.replace(other, path)
    lines, restarted = tail.read_lines()
    assert restarted and [json.loads(x)["loss"] for x in lines] == [0.5] * 8


def test_poll_reads_only_new_records_and_says_when_the_run_started_over(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", [train(s) for s in range(1, 4)], max_steps=50)
    follower = RunFollower(run)
    attached = follower.attach()
    assert attached is not None and attached.last_step() == 3
    first = follower.poll()
    assert not any(isinstance(e, msg.StepMetrics) for e in first)
    append(run / METRICS_FILE, line(train(4)))
    events = follower.poll()
    assert [e.step for e in events if isinstance(e, msg.StepMetrics)] == [4]
    assert not any(isinstance(e, msg.RunStarted) for e in events)
    assert follower.poll() == []  # nothing new, no state change
    # A resume from step 2 rewrites metrics.jsonl without steps 3 and 4, then goes on.
    (run / METRICS_FILE).write_bytes(line(train(1)) + line(train(2)) + line(train(3, 1.25)))
    events = follower.poll()
    started = [e for e in events if isinstance(e, msg.RunStarted)]
    assert len(started) == 1 and started[0].max_steps == 50
    assert events.index(started[0]) == 0  # (before the steps it redoes)
    assert [e.step for e in events if isinstance(e, msg.StepMetrics)] == [1, 2, 3]


def test_attach_thins_train_records_but_keeps_the_last_and_every_other_record(
        tmp_path: Path) -> None:
    count, points = 10_001, 100
    records = []
    for step in range(1, count + 1):
        records.append(train(step, loss=1 + 1 / step))
        if step % 997 == 0:
            records.append({"type": "eval", "step": step, "split": "val", "val_loss": 1.0,
                            "val_ppl": math.e, "time": 1.0})
        if step % 1499 == 0:
            records.append({"type": "hparam", "step": step + 1, "name": "optim.lr",
                            "old": 1e-3, "new": 5e-4, "time": 1.0})
    run = make_run(tmp_path / "run", records)
    attached = RunFollower(run).attach(points=points)
    assert attached is not None and attached.train_records == count
    steps = [r["step"] for r in attached.records if r["type"] == "train"]
    assert 0 < len(steps) <= 2 * points
    assert steps[-1] == count and attached.last_step() == count
    assert steps == sorted(set(steps))
    others = [r for r in records if r["type"] != "train"]
    assert [r for r in attached.records if r["type"] != "train"] == others
    # A short run is not thinned at all.
    short = make_run(tmp_path / "short", records[:50])
    assert RunFollower(short).attach(points=points).records == records[:50]


def test_each_record_type_becomes_its_event() -> None:
    info = {"max_steps": 100}
    step = record_event(train(7, loss=1.5), info)
    assert isinstance(step, msg.StepMetrics)
    assert (step.step, step.loss, step.lr, step.tokens, step.max_steps) == (7, 1.5, 1e-3, 448,
                                                                           100)
    ev = record_event({"type": "eval", "step": 10, "split": "val", "val_loss": 2.0,
                       "val_ppl": 7.389, "val_top1": 0.25, "val_top5": 0.5}, info)
    assert isinstance(ev, msg.EvalMetrics)
    assert (ev.step, ev.split, ev.loss, ev.perplexity, ev.top1, ev.top5) == (
        10, "val", 2.0, 7.389, 0.25, 0.5)
    sample = record_event({"type": "sample", "step": 10, "prompt": "ab", "text": "cd"}, info)
    assert sample == msg.EvalSample(10, "ab", "cd")
    hp = record_event({"type": "hparam", "step": 11, "name": "optim.lr", "old": 1e-3,
                       "new": 5e-4}, info)
    assert hp == msg.HparamChanged(11, "optim.lr", 1e-3, 5e-4)
    ck = record_event({"type": "checkpoint", "step": 20, "path": "/r/checkpoints/step-0000020",
                       "best": True}, info)
    assert ck == msg.CheckpointSaved(20, "/r/checkpoints/step-0000020", True)
    pr = record_event({"type": "prune", "step": 30, "target": 0.5, "sparsity": 0.49}, info)
    assert pr == msg.SparsityChanged(30, 0.5, 0.49)
    warn = record_event({"type": "warning", "step": 40, "message": "collapsed"}, info)
    assert warn == msg.Warning("collapsed")
    refused = record_event({"type": "control", "id": "x", "op": "set", "name": "optim.lr",
                            "value": -1, "ok": False, "reason": "optim.lr: must be > 0",
                            "step": 41}, info)
    assert isinstance(refused, msg.Error) and not refused.fatal
    assert "optim.lr" in refused.message and "must be > 0" in refused.message
    applied = {"type": "control", "id": "y", "op": "pause", "ok": True, "step": 41}
    assert record_event(applied, info) is None  # (the Status change says it)
    # Damaged records are no event, never an exception.
    for bad in ({"type": "train", "step": "7", "loss": 1.0, "lr": 1e-3},
                {"type": "train", "step": 7, "loss": float("nan"), "lr": 1e-3},
                {"type": "eval", "step": 7, "split": "val"}, {"type": "mystery", "step": 1},
                {"type": "hparam", "step": 1, "name": "optim.lr", "old": None, "new": 1}):
        assert record_event(bad, info) is None


def test_following_a_run_never_imports_torch(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", [train(s) for s in range(1, 30)], status="running")
    code = ("import sys\n"
            "from core.follow import RunFollower\n"
            "from core.control import make_request, send_control\n"
            "from core.runs import run_status\n"
            f"f = RunFollower({str(run)!r})\n"
            "assert f.attach() is not None and f.poll()\n"
            "run_status(f.run_dir)\n"
            f"send_control(f.run_dir, make_request('set', 'optim.lr', 1e-3))\n"
            "assert 'torch' not in sys.modules, 'torch imported by the follower'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_jobs_state_comes_from_its_heartbeat_then_from_run_json(tmp_path: Path) -> None:
    """A job on another machine: running and paused as its heartbeat says, lost when the
    heartbeat goes stale, and a failure with its one line once run.json says so. Each change
    is one Status, sent once."""
    import time

    from core.run_claim import HEARTBEAT_FILE
    from core.values import EngineState

    run = make_run(tmp_path / "run", [train(1)], status="running", pid=1, host="elsewhere")

    def beat(state: str, age: float = 0.0) -> None:
        (run / HEARTBEAT_FILE).write_text(json.dumps({
            "time": time.time() - age, "pid": 1, "host": "elsewhere", "state": state,
            "step": 1, "every": 0.2}))

    def statuses(follower: RunFollower) -> list[tuple[str, str]]:
        return [(e.state, e.detail) for e in follower.poll() if isinstance(e, msg.Status)]

    beat("running")
    follower = RunFollower(run)
    follower.attach()
    assert statuses(follower) == [(EngineState.RUNNING, "pid 1 on elsewhere")]
    assert statuses(follower) == []
    beat("paused")
    assert statuses(follower) == [(EngineState.PAUSED, "pid 1 on elsewhere")]
    beat("paused", age=600)
    ((state, detail),) = statuses(follower)
    assert state == EngineState.LOST and "the job writing it is gone" in detail
    info = json.loads((run / INFO_FILE).read_text())
    (run / INFO_FILE).write_text(json.dumps({**info, "status": "failed",
                                             "error": "disk full: metrics.jsonl"}))
    events = follower.poll()
    assert [type(e) for e in events] == [msg.Error, msg.Status]
    assert events[0].message == "disk full: metrics.jsonl" and events[0].fatal
    assert events[1].state == EngineState.FAILED


def test_a_step_logged_while_the_heartbeat_says_preparing_means_running(tmp_path: Path) -> None:
    """A viewer never shows steps of a run it still calls preparing: the first train record
    read makes the state running at once, before the next heartbeat says so."""
    import json as _json
    import os as _os
    import socket as _socket
    import time as _time

    from core import messages as msg
    from core.follow import RunFollower

    (tmp_path / "run.json").write_text(_json.dumps({
        "status": "running", "max_steps": 10, "pid": _os.getpid(),
        "host": _socket.gethostname()}))
    (tmp_path / "heartbeat.json").write_text(_json.dumps({
        "time": _time.time(), "pid": _os.getpid(), "host": _socket.gethostname(),
        "state": "preparing", "step": 0, "every": 2.0}))
    follower = RunFollower(tmp_path)
    assert follower.attach() is not None
    first = follower.poll()
    assert [e.state for e in first if isinstance(e, msg.Status)] == ["preparing"]
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write(_json.dumps({"type": "train", "step": 1, "loss": 2.0, "lr": 1e-3}) + "\n")
    events = follower.poll(state=False)
    assert [type(e).__name__ for e in events] == ["Status", "StepMetrics"]
    assert events[0].state == "running"
    assert follower.poll() == []  # (the heartbeat's "preparing" is older news: no flip back)
