"""The run folder as the interface to a job, without a job: the claim (job.lock, heartbeat.json),
the status a viewer on another machine derives from the heartbeat, and the control folder
holding whatever anyone put there. (tests/test_jobs.py does the same with real jobs.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.jobs import alive, wait_until

from core.control import CONTROL_DIR, ControlInbox, ControlRequest, make_request, send_control
from core.errors import LlmlabError
from core.run_claim import HEARTBEAT_FILE, LOCK_FILE, RunClaim, read_heartbeat
from core.runs import CHECKPOINT_FILES, INFO_FILE, LOST, LOST_NO_CHECKPOINT, run_status

OTHER_HOST = "a-machine-that-is-not-this-one"


def one_line(text: str) -> str:
    assert "\n" not in text.strip() and text.strip(), repr(text)
    return text


# --------------------------------------------------------------------------- the claim

def test_a_claimed_folder_refuses_a_second_claim_until_released(tmp_path: Path) -> None:
    first = RunClaim.acquire(tmp_path)
    try:
        with pytest.raises(LlmlabError) as refused:
            RunClaim.acquire(tmp_path)
        line = one_line(str(refused.value))
        assert f"pid {os.getpid()} on {socket.gethostname()}" in line
        assert str(tmp_path) in line
    finally:
        first.release("finished")
    assert read_heartbeat(tmp_path).state == "finished"
    second = RunClaim.acquire(tmp_path)  # (the ended job's heartbeat does not refuse it)
    second.release("stopped")


def test_the_claim_of_a_killed_job_is_taken_over(tmp_path: Path) -> None:
    code = ("import sys, time\n"
            "from core.run_claim import RunClaim\n"
            f"RunClaim.acquire({str(tmp_path)!r})\n"
            "print('claimed', flush=True)\n"
            "time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "claimed"
        with pytest.raises(LlmlabError) as refused:
            RunClaim.acquire(tmp_path)
        assert f"pid {holder.pid} on {socket.gethostname()}" in one_line(str(refused.value))
        holder.kill()
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)
    assert read_heartbeat(tmp_path).state == "preparing"  # (it died without a word)
    claim = RunClaim.acquire(tmp_path)  # the kernel dropped the dead job's lock
    try:
        beat = read_heartbeat(tmp_path)
        assert beat.pid == os.getpid() and beat.state == "preparing"
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    finally:
        claim.release("stopped")
    assert not alive(holder.pid)


def test_a_claim_never_follows_a_symlinked_lock_file(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    (run / LOCK_FILE).symlink_to(target)
    with pytest.raises(LlmlabError) as refused:
        RunClaim.acquire(run)
    assert str(run / LOCK_FILE) in one_line(str(refused.value))
    assert target.read_text() == "keep me\n"
    # A dangling link is not followed to create its target either.
    (run / LOCK_FILE).unlink()
    (run / LOCK_FILE).symlink_to(tmp_path / "created-through-a-link")
    with pytest.raises(LlmlabError):
        RunClaim.acquire(run)
    assert not (tmp_path / "created-through-a-link").exists()
    assert not (run / HEARTBEAT_FILE).exists()
    # Nor is a folder in its place a lock.
    (run / LOCK_FILE).unlink()
    (run / LOCK_FILE).mkdir()
    with pytest.raises(LlmlabError):
        RunClaim.acquire(run)


def test_a_fresh_heartbeat_of_another_host_refuses_a_claim(tmp_path: Path) -> None:
    """Where flock does not reach across machines (some shared filesystems), the heartbeat of
    a live job elsewhere still keeps a second writer out; a stale or ended one does not."""
    write_heartbeat(tmp_path, age=0.0, state="running", host=OTHER_HOST, pid=4242)
    with pytest.raises(LlmlabError) as refused:
        RunClaim.acquire(tmp_path)
    assert f"pid 4242 on {OTHER_HOST}" in one_line(str(refused.value))
    for age, state in ((600.0, "running"), (0.0, "finished")):
        write_heartbeat(tmp_path, age=age, state=state, host=OTHER_HOST, pid=4242)
        RunClaim.acquire(tmp_path).release("stopped")


def test_the_heartbeat_is_refreshed_and_says_each_state_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMLAB_HEARTBEAT_S", "0.05")
    claim = RunClaim.acquire(tmp_path)
    try:
        first = read_heartbeat(tmp_path)
        assert first.every == 0.05 and first.pid == os.getpid()
        claim.beat(step=17)
        wait_until(lambda: (b := read_heartbeat(tmp_path)) and b.step == 17
                   and b.time > first.time, what="a newer heartbeat with the step")
        monkeypatch.setenv("LLMLAB_HEARTBEAT_S", "3600")  # (not read again by the claim)
        claim.beat(state="paused")
        wait_until(lambda: read_heartbeat(tmp_path).state == "paused", what="paused")
    finally:
        claim.release("stopped")
    beat = read_heartbeat(tmp_path)
    time.sleep(0.2)
    assert read_heartbeat(tmp_path) == beat  # released: no more beats
    assert beat.state == "stopped"


# --------------------------------------------------------------------------- status

def write_heartbeat(run: Path, age: float, state: str, host: str, pid: int,
                    every: float = 0.2) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / HEARTBEAT_FILE).write_text(json.dumps({
        "time": time.time() - age, "pid": pid, "host": host, "state": state, "step": 40,
        "every": every}))


def running_elsewhere(run: Path) -> None:
    run.mkdir(parents=True, exist_ok=True)
    # (a pid that is alive here: the pid check must not be used for another host's job)
    (run / INFO_FILE).write_text(json.dumps({
        "session": "s", "status": "running", "step": 40, "max_steps": 100, "pid": os.getpid(),
        "host": OTHER_HOST, "pid_start": 1}))


def test_status_of_a_job_on_another_host_comes_from_its_heartbeat(tmp_path: Path) -> None:
    run = tmp_path / "run"
    running_elsewhere(run)
    write_heartbeat(run, age=0.5, state="running", host=OTHER_HOST, pid=99)
    assert run_status(run) == "running"
    write_heartbeat(run, age=0.5, state="paused", host=OTHER_HOST, pid=99)
    assert run_status(run) == "paused"
    # Three beats missed and more: the machine died, or the job was killed there.
    write_heartbeat(run, age=60.0, state="running", host=OTHER_HOST, pid=99)
    assert run_status(run) == LOST_NO_CHECKPOINT
    write_heartbeat(run, age=60.0, state="paused", host=OTHER_HOST, pid=99)
    assert run_status(run) == LOST_NO_CHECKPOINT
    step = run / "checkpoints" / "step-0000020"
    step.mkdir(parents=True)
    for name in CHECKPOINT_FILES:
        (step / name).write_bytes(b"x")
    assert run_status(run) == LOST
    # A slow beat is judged by its own period.
    write_heartbeat(run, age=60.0, state="running", host=OTHER_HOST, pid=99, every=30.0)
    assert run_status(run) == "running"


# --------------------------------------------------------------------------- control folder

def test_requests_are_checked_before_they_are_sent() -> None:
    for op, name, value, expected in (
            ("set", "optim.lr", -1.0, "optim.lr: must be > 0 (got -1)"),
            ("set", "optim.lr", float("nan"), "optim.lr: must be a finite number"),
            ("set", "model.n_layer", 2.0, "model.n_layer: cannot change while training"),
            ("set", "train.eval_interval", 2.5, "train.eval_interval: must be a whole number"),
            ("set", "optim.weight_decay", -0.1, "optim.weight_decay: must be >= 0"),
            ("explode", "", None, "explode: not a control"),
            ("pause", "optim.lr", 1.0, "pause: takes no value")):
        with pytest.raises(LlmlabError) as refused:
            make_request(op, name, value)
        assert one_line(str(refused.value)).startswith(expected)
    assert make_request("set", "train.eval_interval", 50.0).value == 50
    assert isinstance(make_request("set", "train.eval_interval", 50.0).value, int)


def test_whatever_lands_in_the_control_folder_is_refused_with_one_line(tmp_path: Path) -> None:
    """The job's inbox never blocks, never follows a link, never reads a big file, and answers
    each thing that is not a request with one line; the real requests among them still come
    through, in the order they were sent."""
    folder = tmp_path / CONTROL_DIR
    first = send_control(tmp_path, make_request("pause"))
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps({"op": "stop"}))
    hostile = {
        "a-link": lambda p: p.symlink_to(outside),
        "b-fifo": os.mkfifo,
        "c-big": lambda p: p.write_text(json.dumps({"op": "pause", "pad": "x" * (1 << 20)})),
        "d-text": lambda p: p.write_text("pause, please\n"),
        "e-op": lambda p: p.write_text(json.dumps({"op": "explode"})),
        "f-field": lambda p: p.write_text(json.dumps({"op": "set", "name": "model.n_layer",
                                                      "value": 2})),
        "g-nan": lambda p: p.write_text('{"op": "set", "name": "optim.lr", "value": NaN}'),
        "h-list": lambda p: p.write_text("[1, 2]"),
        "i-bytes": lambda p: p.write_bytes(b'{"op": "\xff\xfe"}'),
        "j-folder": lambda p: p.mkdir(),
    }
    for name, make in hostile.items():
        make(folder / f"{name}.json")
    last = send_control(tmp_path, make_request("set", "optim.lr", 3e-4))
    (folder / ".half-written.tmp").write_text('{"op": "st')  # (not yet renamed: not taken)

    taken = ControlInbox(tmp_path).take(force=True)
    requests = [t for t in taken if isinstance(t, ControlRequest)]
    refused = dict(t for t in taken if not isinstance(t, ControlRequest))
    assert [r.id for r in requests] == [first.stem, last.stem]
    assert [r.describe() for r in requests] == ["pause", "set optim.lr=0.0003"]
    assert sorted(refused) == sorted(hostile)
    for name, why in refused.items():
        assert one_line(why) and len(why) < 300, (name, why)
    assert "not a regular file" in refused["a-link"]
    assert "not a regular file" in refused["b-fifo"]
    assert "not a request" in refused["c-big"]
    assert "explode: not a control" in refused["e-op"]
    assert "model.n_layer: cannot change while training" in refused["f-field"]
    assert "optim.lr: must be a finite number" in refused["g-nan"]
    # Each was taken out of the folder (the link, not what it points to) or, where it cannot
    # be (a folder), is not answered again at every step; the unrenamed dot-file stays for
    # its writer to finish.
    assert set(os.listdir(folder)) - {"j-folder.json"} == {".half-written.tmp"}
    assert outside.exists()
    inbox = ControlInbox(tmp_path)
    assert [t for t in inbox.take(force=True) if t[0] != "j-folder"] == []
    assert inbox.take(force=True) == []


def test_only_requests_sent_before_the_job_started_are_refused_as_stale(tmp_path: Path) -> None:
    old = send_control(tmp_path, make_request("pause"))
    started = time.time()
    (tmp_path / CONTROL_DIR / "junk.json").write_text("?")
    new = send_control(tmp_path, make_request("set", "optim.lr", 1e-3))
    inbox = ControlInbox(tmp_path, started=started)
    refused = inbox.refuse_waiting("sent before this job started")
    assert [(r.id, r.op, why[:4]) for r, why in refused] == [
        (old.stem, "pause", "sent"), ("junk", "unknown", "cont")]
    (kept,) = inbox.take()  # (at once: it waited already)
    assert kept.id == new.stem and kept.describe() == "set optim.lr=0.001"
    assert inbox.take(force=True) == [] and os.listdir(tmp_path / CONTROL_DIR) == []
    # This process started before any of them was written: none is stale for it.
    third = send_control(tmp_path, make_request("resume"))
    inbox = ControlInbox(tmp_path)
    assert inbox.refuse_waiting("stale") == []
    assert [r.id for r in inbox.take()] == [third.stem]


def test_ctl_says_so_when_the_job_ends_before_answering(tmp_path: Path) -> None:
    """A job that dies (or finishes) with a request waiting never answers it: `llmlab ctl`
    says so in one line as soon as the run shows it, and withdraws the request, instead of
    waiting out its --wait and leaving it for the next job."""
    from helpers.cli import llmlab

    from core.runs import process_start

    run = tmp_path / "runs" / "s" / "20260101-000000"
    run.mkdir(parents=True)
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (run / INFO_FILE).write_text(json.dumps({
            "session": "s", "status": "running", "step": 3, "max_steps": 100, "pid": job.pid,
            "host": socket.gethostname(), "pid_start": process_start(job.pid)}))
        write_heartbeat(run, age=0.0, state="running", host=socket.gethostname(), pid=job.pid)
        assert run_status(run) == "running"
        ctl = subprocess.Popen(
            [sys.executable, "-m", "llmlab", "ctl", str(run), "pause", "--wait", "120"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: (run / CONTROL_DIR).is_dir()
                       and os.listdir(run / CONTROL_DIR), what="the request")
            job.kill()
            job.wait(timeout=30)
            out, err = ctl.communicate(timeout=200)
        finally:
            if ctl.poll() is None:
                ctl.kill()
                ctl.communicate()
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    assert ctl.returncode == 1 and out == "", (out, err)
    assert err == f"pause: not taken, the job ended first ({LOST_NO_CHECKPOINT})\n"
    assert os.listdir(run / CONTROL_DIR) == []
    # And a run no job trains is refused before anything is sent.
    result = llmlab(tmp_path, "ctl", str(run), "resume")
    assert result.returncode == 2
    assert one_line(result.stderr).startswith(f"{run}: {LOST_NO_CHECKPOINT}, no job is training")
    assert os.listdir(run / CONTROL_DIR) == []
