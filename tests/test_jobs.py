"""Trainings as jobs, the way a user meets them from a shell: `llmlab train --detach`, then
`llmlab ctl`, `llmlab runs` and `llmlab train --resume` from other commands, all through the
run folder. Each test starts few jobs (each imports torch) and checks many things on each; none
leaves a process behind (the `jobs` fixture fails the test that would)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
from pathlib import Path

import pytest
from helpers.cli import llmlab, ok
from helpers.jobs import JOB_ENV, alive, wait_until
from helpers.sessions import small_session

from core.checkpoint import list_checkpoints
from core.control import CONTROL_DIR, make_request, send_control
from core.run_claim import HEARTBEAT_FILE
from core.runs import read_metrics, read_run_info
from core.session import save_session

HOST = socket.gethostname()



def write_session(folder: Path, **fields) -> Path:
    path = folder / "s.toml"
    save_session(small_session(folder, name="s", log_interval=1, eval_interval=0, **fields),
                 path)
    return path


def ctl(folder: Path, run: Path, *args: str):
    return llmlab(folder, "ctl", str(run), *args, **JOB_ENV)


def one_line_exit_2(result) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), result.stderr
    return lines[0]


def applied_at(out: str, what: str) -> int:
    found = re.fullmatch(rf"{re.escape(what)}: applied at step (\d+)\n", out)
    assert found, out
    return int(found.group(1))


def train_records(run: Path) -> list[dict]:
    return [r for r in read_metrics(run) if r.get("type") == "train"]


def last_step(run: Path) -> int:
    records = train_records(run)
    return records[-1]["step"] if records else 0


def status_in_listing(folder: Path, run: Path) -> str:
    """The status `llmlab runs` shows for `run`."""
    out = ok(llmlab(folder, "runs", **JOB_ENV))
    (row,) = [x for x in out.splitlines() if f"s/{run.name}" in x]
    return row.split()[-1]


def snapshot(run: Path) -> dict[str, tuple[int, int, int]]:
    """(size, mtime_ns, inode) of every file in the run folder but the heartbeat (and the
    temporary file its writer renames over it)."""
    seen = {}
    for root, dirs, files in os.walk(run):
        for name in files + dirs:
            path = Path(root, name)
            if not path.name.lstrip(".").startswith(HEARTBEAT_FILE):
                st = path.lstat()
                seen[str(path.relative_to(run))] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return seen


def test_a_detached_job_is_steered_from_the_command_line(tmp_path: Path, jobs) -> None:
    """set (refused, then applied), hostile files in its control folder, pause, a second
    writer refused, resume, checkpoint, stop: the job answers each at a step boundary."""
    write_session(tmp_path, lr=1e-3, schedule="constant")
    run, pid = jobs.detach(tmp_path, "s.toml")
    assert alive(pid)  # (it came back while the job starts)
    wait_until(lambda: last_step(run) >= 5, what="the job's first steps")

    # A value out of range: one line, exit 2, nothing sent, the job trains on as it was.
    line = one_line_exit_2(ctl(tmp_path, run, "set", "optim.lr=-1"))
    assert line == "optim.lr: must be > 0 (got -1)"
    # A live job without a checkpoint cannot be resumed by a second job: it is named.
    line = one_line_exit_2(llmlab(tmp_path, "train", "s.toml", "--resume", str(run), **JOB_ENV))
    assert f"pid {pid} on {HOST}" in line, line

    # Whatever else lands in the control folder is refused in its ack, one line each.
    folder = run / CONTROL_DIR
    folder.mkdir(exist_ok=True)
    pause_file = tmp_path / "pause.json"
    pause_file.write_text(json.dumps({"op": "pause"}))
    hostile = {
        "a-link": lambda p: p.symlink_to(pause_file),
        "b-fifo": os.mkfifo,
        "c-big": lambda p: p.write_text(json.dumps({"op": "pause", "pad": "x" * (1 << 20)})),
        "d-text": lambda p: p.write_text("pause, please"),
        "e-op": lambda p: p.write_text(json.dumps({"op": "explode"})),
        "f-field": lambda p: p.write_text(json.dumps({"op": "set", "name": "model.n_layer",
                                                      "value": 2})),
        "g-nan": lambda p: p.write_text('{"op": "set", "name": "optim.lr", "value": NaN}'),
    }
    for name, make in hostile.items():
        make(folder / f"{name}.json")

    # A valid value: applied at the next step, in metrics.jsonl and in the answer.
    at = applied_at(ok(ctl(tmp_path, run, "set", "optim.lr=5e-4")), "set optim.lr=0.0005")
    records = read_metrics(run)
    refusals = {r["id"]: r for r in records if r["type"] == "control" and not r["ok"]}
    assert sorted(refusals) == sorted(hostile), refusals
    for record in refusals.values():
        assert record["reason"].strip() and "\n" not in record["reason"], record
    assert "optim.lr: must be a finite number" in refusals["g-nan"]["reason"]
    assert "model.n_layer: cannot change while training" in refusals["f-field"]["reason"]
    assert os.listdir(folder) == [] and pause_file.exists()
    (ack,) = [r for r in records if r["type"] == "control" and r["ok"]]
    assert (ack["op"], ack["name"], ack["value"], ack["step"]) == ("set", "optim.lr", 5e-4, at)
    (change,) = [r for r in records if r["type"] == "hparam"]
    assert (change["step"], change["name"], change["old"], change["new"]) == (
        at + 1, "optim.lr", 1e-3, 5e-4)
    wait_until(lambda: last_step(run) > at + 3, what="steps after the change")
    lrs = {r["step"]: r["lr"] for r in train_records(run)}
    assert {lr for step, lr in lrs.items() if step <= at} == {1e-3}  # (nothing else applied)
    assert {lr for step, lr in lrs.items() if step > at} == {5e-4}
    assert status_in_listing(tmp_path, run) == "running"  # (the linked pause was not taken)

    # A checkpoint now, then pause: a second writer is refused and touches nothing.
    saved = applied_at(ok(ctl(tmp_path, run, "checkpoint")), "checkpoint")
    assert saved in [c.step for c in list_checkpoints(run / "checkpoints")]
    paused = applied_at(ok(ctl(tmp_path, run, "pause")), "pause")
    assert status_in_listing(tmp_path, run) == "paused"
    before = snapshot(run)
    line = one_line_exit_2(llmlab(tmp_path, "train", "s.toml", "--resume", str(run), **JOB_ENV))
    assert f"pid {pid} on {HOST}" in line, line
    assert snapshot(run) == before
    assert last_step(run) == paused and alive(pid)

    assert applied_at(ok(ctl(tmp_path, run, "resume")), "resume") == paused
    wait_until(lambda: last_step(run) > paused + 3, what="steps after resume")
    assert status_in_listing(tmp_path, run) == "running"

    # Stop: the job saves a checkpoint where it stopped, says so, and exits.
    stopped = applied_at(ok(ctl(tmp_path, run, "stop")), "stop")
    wait_until(lambda: not alive(pid), what="the stopped job to exit")
    info = read_run_info(run)
    assert (info["status"], info["step"]) == ("stopped", stopped)
    assert list_checkpoints(run / "checkpoints")[-1].step == stopped
    assert status_in_listing(tmp_path, run) == "stopped"
    line = one_line_exit_2(ctl(tmp_path, run, "pause"))
    assert line.startswith(f"{run}: stopped, no job is training it (resume it with: llmlab "
                           f"train {run / 'session.toml'} --resume {run})")


def test_a_killed_job_is_lost_and_a_detached_resume_continues_exactly(
        tmp_path: Path, jobs) -> None:
    """Killed (SIGKILL, a machine gone): `llmlab runs` says lost; `--resume --detach` trains
    on from its last checkpoint, refusing what was left in its control folder, to the same
    losses as a run never interrupted, and its process exits at max_steps."""
    steps = 1200
    write_session(tmp_path, max_steps=steps, checkpoint_interval=100, dropout=0.1)
    straight, straight_pid = jobs.detach(tmp_path, "s.toml")
    assert read_run_info(straight).get("status") != "finished"  # (it did not wait)
    run, pid = jobs.detach(tmp_path, "s.toml")
    assert run != straight
    wait_until(lambda: last_step(run) >= 150, what="steps past the first checkpoint")
    paused = applied_at(ok(ctl(tmp_path, run, "pause")), "pause")  # (to kill it mid-run)
    assert paused < steps
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), what="the killed job to die")
    assert read_run_info(run)["status"] == "running"  # (it could not say otherwise)
    wait_until(lambda: status_in_listing(tmp_path, run) == "lost", timeout=60,
               what="llmlab runs to show the run lost")
    stale = send_control(run, make_request("pause"))  # (for a job that is gone)

    again, resumed = jobs.detach(tmp_path, "s.toml", "--resume", str(run))
    assert again == run
    for job in (resumed, straight_pid):
        wait_until(lambda job=job: not alive(job), what=f"job {job} to end at max_steps")

    for folder in (run, straight):
        info = read_run_info(folder)
        assert (info["status"], info["step"]) == ("finished", steps), info
    records = read_metrics(run)
    (refused,) = [r for r in records if r["type"] == "control" and r["id"] == stale.stem]
    assert refused["ok"] is False and refused["step"] == paused // 100 * 100  # (resumed from)
    assert refused["op"] == "pause"  # (what the viewer shows as refused)
    assert "sent before this job started" in refused["reason"]
    losses = [(r["step"], r["loss"]) for r in records if r["type"] == "train"]
    assert [s for s, _ in losses] == list(range(1, steps + 1))
    assert losses == [(r["step"], r["loss"]) for r in train_records(straight)]


def test_a_request_sent_while_the_job_starts_is_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app launches a job (core.launch) and may send it a request before the job has
    written a line (a user pressing pause at once): that request is this job's, applied,
    not refused as one left over from an earlier job."""
    from core.launch import launch_training

    for name, value in JOB_ENV.items():
        monkeypatch.setenv(name, value)
    session = small_session(tmp_path, name="s", log_interval=1, eval_interval=0)
    job = launch_training(session)
    try:
        sent = send_control(job.run_dir, make_request("pause"))
        (ack,) = wait_until(lambda: [r for r in read_metrics(job.run_dir)
                                     if r.get("id") == sent.stem], what="the pause's answer")
        assert ack["ok"] is True, ack
        wait_until(lambda: status_in_listing(tmp_path, job.run_dir) == "paused", what="paused")
        stopped = applied_at(ok(ctl(tmp_path, job.run_dir, "stop")), "stop")
        assert job.process.wait(timeout=120) == 130  # (stopped: as after ctrl+c)
    finally:
        if job.process.poll() is None:
            job.process.kill()
            job.process.wait()
    assert stopped == ack["step"]  # (it stood still while paused)
    assert read_run_info(job.run_dir)["status"] == "stopped"
