"""Sweeps: an Optuna study whose trials are training jobs (core/sweep.py, `llmlab sweep`).

Each trial here is a real job (a process importing torch, ~2 s), so the models are tiny, the
runs a few dozen steps and the trial counts small. Every job a test starts is gone at its end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from helpers.cli import llmlab, ok, one_line_exit_2
from helpers.jobs import JOB_ENV, JobTracker, alive, job_pids, wait_until
from helpers.sessions import small_session

from core.control import make_request, send_control
from core.runs import read_run_info
from core.session import load_session, save_session
from core.sweep import Sweep, trial_view
from core.sweep_storage import JOURNAL_FILE, counted, sweep_folder

LR_AND_WIDTH = {"optim.lr": {"low": 1e-3, "high": 3e-2, "log": True},
                "model.n_embd": {"choices": [16, 32]}}


def sweep_session(folder: Path, trials: int, parallel: int, space: dict, **fields):
    s = small_session(folder, context=16, **{"max_steps": 30, "eval_interval": 10, **fields})
    s.sweep.trials, s.sweep.parallel, s.sweep.space = trials, parallel, space
    save_session(s, folder / "s.toml")
    return s


def study_of(folder: Path, name: str = "tiny") -> optuna.Study:
    (journal,) = (folder / "runs" / name).glob(f"sweep-*/{JOURNAL_FILE}")
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal)))
    return optuna.load_study(study_name=journal.parent.name.removeprefix("sweep-"),
                             storage=storage)


def start_sweep(tmp_path: Path, jobs: JobTracker, *extra: str) -> subprocess.Popen:
    """`llmlab sweep s.toml [extra]` in the background (its table comes at the end, off a
    terminal)."""
    env = {**os.environ, "LLMLAB_CACHE_DIR": str(tmp_path / "cache"), **JOB_ENV,
           "COLUMNS": "240"}
    sweeper = subprocess.Popen([sys.executable, "-m", "llmlab", "sweep", "s.toml", *extra],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    jobs.pids.append(sweeper.pid)
    return sweeper


@pytest.fixture
def jobs(tmp_path: Path):
    tracker = JobTracker()
    yield tracker
    tracker.pids += job_pids(tmp_path)
    assert tracker.finish() == [], "a sweep left a job running"


def test_a_six_trial_sweep_with_two_at_once_finds_the_minimum(tmp_path, jobs) -> None:
    sweep_session(tmp_path, trials=6, parallel=2, space=LR_AND_WIDTH)
    out = ok(llmlab(tmp_path, "sweep", "s.toml", timeout=600, LLMLAB_HEARTBEAT_S="0.2"))
    study = study_of(tmp_path)
    trials = study.get_trials()
    assert len(trials) == 6
    states = {t.state for t in trials}
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    for t in trials:  # each trial's own run folder, its frozen session holds its values
        run_dir = Path(t.user_attrs["run_dir"])
        frozen = load_session(run_dir / "session.toml")
        assert frozen.optim.lr == t.params["optim.lr"]
        assert frozen.model.n_embd == t.params["model.n_embd"]
        info = read_run_info(run_dir)
        assert info["trial"] == t.number and info["sweep"] == study.study_name
        if t in done:
            assert info["status"] == "finished"
            assert t.value == pytest.approx(info["best_val_loss"])
    assert len({t.user_attrs["run_dir"] for t in trials}) == 6
    best = min(done, key=lambda t: t.value)
    assert study.best_trial.number == best.number
    assert f"best: trial {best.number}, val loss {best.value:.4f}" in out
    assert f"run folder {best.user_attrs['run_dir']}" in out
    assert "best so far" in out  # (the table, printed once at the end off a terminal)
    listed = ok(llmlab(tmp_path, "sweeps", columns=200))
    assert study.study_name in listed and "6/6" in listed


def test_the_pruner_stops_a_hopeless_trial_and_a_nan_one_fails_while_the_sweep_goes_on(
        tmp_path, jobs, monkeypatch) -> None:
    monkeypatch.setenv("LLMLAB_HEARTBEAT_S", "0.2")
    space = {"optim.lr": {"choices": [3e-2, 1e-7, 1e4]}, "model.n_head": {"choices": [2, 3]}}
    # (400 steps: the pruned trial's job must still train when its stop arrives; at 100 it
    # had once finished first on a loaded machine)
    s = sweep_session(tmp_path, trials=5, parallel=1, space=space, max_steps=400, min_lr=0.0)
    s.sweep.sampler, s.sweep.pruner, s.sweep.pruner_startup = "random", "median", 1
    sweep = Sweep(s)
    study = sweep.open()
    for lr, heads in ((3e-2, 2), (1e-7, 2), (1e4, 2), (3e-2, 3)):  # (in this order)
        study.enqueue_trial({"optim.lr": lr, "model.n_head": heads})
    sweep.run()
    good, slow, nan, invalid, fifth = study.get_trials()
    State = optuna.trial.TrialState
    assert good.state == State.COMPLETE
    assert slow.state == State.PRUNED  # (lr 1e-7 learns nothing: worse than the median)
    assert max(slow.intermediate_values) < 100  # (stopped early: its job too)
    assert read_run_info(Path(slow.user_attrs["run_dir"]))["status"] == "stopped"
    assert nan.state == State.FAIL
    assert "became" in nan.user_attrs["error"] and "at step" in nan.user_attrs["error"]
    assert invalid.state == State.FAIL and "run_dir" not in invalid.user_attrs
    assert invalid.user_attrs["error"] == ("invalid point: model.n_head: must divide "
                                           "model.n_embd (32 % 3 != 0)")
    assert fifth.state in (State.COMPLETE, State.PRUNED, State.FAIL)  # (it went on)
    table = {v.number: v for v in sweep.table()}
    assert table[1].reason.startswith("pruned at step")
    assert table[2].state == "failed" and table[2].reason == nan.user_attrs["error"]


def test_a_sweep_killed_mid_way_resumes_to_its_trial_count(tmp_path, jobs) -> None:
    sweep_session(tmp_path, trials=4, parallel=1, space=LR_AND_WIDTH, max_steps=60,
                  eval_interval=20)
    sweeper = start_sweep(tmp_path, jobs)

    try:
        second = wait_until(lambda: _trial_1_training_after_0(tmp_path), timeout=300,
                            what="trial 0 complete, trial 1 training")
    finally:
        sweeper.send_signal(signal.SIGKILL)  # (the sweep dies without a word ...)
        sweeper.wait()
    send_control(second, make_request("pause"))  # (... its job trains on, nobody following)
    jobs.pids += job_pids(tmp_path)
    before = study_of(tmp_path).get_trials()
    assert before[1].state == optuna.trial.TrialState.RUNNING
    study_name = study_of(tmp_path).study_name
    out = ok(llmlab(tmp_path, "sweep", "s.toml", "--resume", study_name, timeout=600,
                    LLMLAB_HEARTBEAT_S="0.2"))
    trials = study_of(tmp_path).get_trials()
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in trials)
    counted = [t for t in trials if not t.user_attrs.get("interrupted")]
    assert len(counted) == 4, [(t.number, t.state) for t in trials]  # (none twice, none lost)
    assert trials[0].state == optuna.trial.TrialState.COMPLETE  # (kept, not run again)
    assert (trials[0].value, trials[0].user_attrs) == (before[0].value, before[0].user_attrs)
    killed = trials[1]  # (its job was stopped; the trial failed with why, and replaced)
    assert killed.state == optuna.trial.TrialState.FAIL
    assert killed.user_attrs["interrupted"].startswith("the sweep ended while it trained")
    assert read_run_info(second)["status"] == "stopped"
    assert len(trials) == 5
    assert len({t.user_attrs.get("run_dir") for t in trials}) == len(trials)
    assert "best: trial" in out
    for pid in job_pids(tmp_path):
        wait_until(lambda pid=pid: not alive(pid), timeout=60, what=f"job {pid} to end")


def test_resume_of_an_unknown_study_and_an_empty_space_are_one_line(tmp_path) -> None:
    sweep_session(tmp_path, trials=2, parallel=1, space={})
    result = llmlab(tmp_path, "sweep", "s.toml")
    assert result.returncode == 2 and result.stderr.startswith("sweep.space: nothing to search")
    sweep_session(tmp_path, trials=2, parallel=1, space=LR_AND_WIDTH)
    result = llmlab(tmp_path, "sweep", "s.toml", "--resume", "nope")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"nope: no such sweep of session tiny (no "
        f"{sweep_folder(load_session(tmp_path / 's.toml'), 'nope') / JOURNAL_FILE}); "
        "llmlab sweeps lists them"]


def test_a_grid_of_invalid_points_fails_each_with_its_line_and_ends(tmp_path) -> None:
    space = {"model.n_head": {"choices": [3, 5]}}
    s = sweep_session(tmp_path, trials=5, parallel=1, space=space)
    s.sweep.sampler = "grid"
    save_session(s, tmp_path / "s.toml")
    result = llmlab(tmp_path, "sweep", "s.toml")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no trial completed" in result.stderr
    trials = study_of(tmp_path).get_trials()
    assert len(trials) == 2  # (the grid is done: no point is tried twice)
    assert sorted(t.user_attrs["error"] for t in trials) == [
        "invalid point: model.n_head: must divide model.n_embd (32 % 3 != 0)",
        "invalid point: model.n_head: must divide model.n_embd (32 % 5 != 0)"]
    assert "failed: invalid point: model.n_head" in result.stdout
    assert not list((tmp_path / "runs" / "tiny").glob("2*"))  # (no job was started)


def _running_trial(tmp_path: Path, number: int) -> Path | None:
    """Trial `number`'s run folder once its job trains (run.json says running)."""
    try:
        trials = study_of(tmp_path).get_trials()
    except (ValueError, KeyError):  # (no journal yet, or no study in it yet)
        return None
    if len(trials) <= number:
        return None
    run_dir = Path(trials[number].user_attrs.get("run_dir", "/nonexistent"))
    return run_dir if read_run_info(run_dir).get("status") == "running" else None


def test_a_trial_whose_job_dies_fails_with_why_and_the_sweep_goes_on(tmp_path, jobs) -> None:
    sweep_session(tmp_path, trials=2, parallel=2, space=LR_AND_WIDTH, max_steps=100_000)
    sweeper = start_sweep(tmp_path, jobs)
    first = wait_until(lambda: _running_trial(tmp_path, 0), timeout=300, what="trial 0")
    second = wait_until(lambda: _running_trial(tmp_path, 1), timeout=300, what="trial 1")
    pid = read_run_info(first)["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    cores = len(os.sched_getaffinity(0))
    assert f"OMP_NUM_THREADS={max(1, cores // 2)}".encode() in environ  # (cores/parallel)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: study_of(tmp_path).get_trials()[0].state
               == optuna.trial.TrialState.FAIL, timeout=120, what="trial 0 failed")
    died = study_of(tmp_path).get_trials()[0]
    assert died.user_attrs["error"].startswith("the job died at step ")
    assert died.user_attrs["error"].endswith(": killed by signal 9")
    send_control(second, make_request("stop"))  # (the other trial trained on meanwhile)
    out, err = sweeper.communicate(timeout=300)
    assert sweeper.returncode == 1 and "no trial completed" in err  # (stopped by a request)
    assert "failed: the job died at step" in out
    assert "stopped at step" in study_of(tmp_path).get_trials()[1].user_attrs["error"]


def test_ctrl_c_stops_the_running_trials_and_says_how_to_resume(tmp_path, jobs) -> None:
    sweep_session(tmp_path, trials=3, parallel=1, space=LR_AND_WIDTH, max_steps=100_000)
    sweeper = start_sweep(tmp_path, jobs)
    run_dir = wait_until(lambda: _running_trial(tmp_path, 0), timeout=300, what="trial 0")
    sweeper.send_signal(signal.SIGINT)
    out, err = sweeper.communicate(timeout=300)
    study = study_of(tmp_path)
    assert sweeper.returncode == 130, err
    assert f"interrupted; continue with: llmlab sweep s.toml --resume {study.study_name}" in err
    assert "Traceback" not in err
    (trial,) = study.get_trials()
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["interrupted"].startswith("the sweep was stopped at step")
    assert read_run_info(run_dir)["status"] == "stopped"  # (its job stopped, resumable)
    ok(llmlab(tmp_path, "sweep", "s.toml", "--resume", study.study_name, "--trials", "2",
              "--set", "train.max_steps=20", timeout=600, LLMLAB_HEARTBEAT_S="0.2"))
    trials = study_of(tmp_path).get_trials()  # (the interrupted one replaced: 2 counted)
    assert [t.state for t in trials[1:]] == [optuna.trial.TrialState.COMPLETE] * 2
    assert counted(study_of(tmp_path)) == 2 and len(trials) == 3


def test_a_stop_asked_through_the_storage_stops_every_process_of_the_study(
        tmp_path, jobs) -> None:
    """`llmlab sweep s.toml --stop STUDY` reaches a sweep's processes through the study's
    storage, as it would on machines that share only the storage: the two running it here
    (one more worker joined with --resume) stop their trials and end as after Ctrl+C. A
    process started after the stop is not stopped by it."""
    sweep_session(tmp_path, trials=4, parallel=1, space=LR_AND_WIDTH, max_steps=100_000)
    first = start_sweep(tmp_path, jobs)
    wait_until(lambda: _running_trial(tmp_path, 0), timeout=300, what="trial 0")
    name = study_of(tmp_path).study_name
    second = start_sweep(tmp_path, jobs, "--resume", name)  # (one more worker)
    wait_until(lambda: _running_trial(tmp_path, 1), timeout=300, what="trial 1")
    said = ok(llmlab(tmp_path, "sweep", "s.toml", "--stop", name))
    assert f"asked every process of study {name} to stop" in said
    for sweeper in (first, second):
        _, err = sweeper.communicate(timeout=300)
        assert sweeper.returncode == 130, err
        assert f"(stop asked by {socket.gethostname()}:" in err and "Traceback" not in err
    trials = study_of(tmp_path).get_trials()
    assert len(trials) == 2 and all(t.state == optuna.trial.TrialState.FAIL for t in trials)
    for t in trials:
        assert t.user_attrs["interrupted"].startswith("the sweep was stopped at step"), t
        assert "asked by" in t.user_attrs["interrupted"]
        assert read_run_info(Path(t.user_attrs["run_dir"]))["status"] == "stopped"
    ok(llmlab(tmp_path, "sweep", "s.toml", "--resume", name, "--trials", "1",
              "--set", "train.max_steps=20", timeout=600, LLMLAB_HEARTBEAT_S="0.2"))
    assert [t.state for t in study_of(tmp_path).get_trials()][2:] == [
        optuna.trial.TrialState.COMPLETE]
    line = one_line_exit_2(llmlab(tmp_path, "sweep", "s.toml", "--stop", "nosuch"))
    assert line.startswith("nosuch: no such sweep of session tiny")


def _trial_1_training_after_0(tmp_path: Path) -> Path | None:
    second = _running_trial(tmp_path, 1)
    if second is None or study_of(tmp_path).get_trials()[0].state != \
            optuna.trial.TrialState.COMPLETE:
        return None
    return second


def test_a_study_in_a_storage_url_is_listed_and_resumed_with_more_trials(tmp_path, jobs) -> None:
    s = sweep_session(tmp_path, trials=1, parallel=1, space=LR_AND_WIDTH, max_steps=20)
    s.sweep.storage = f"sqlite:///{tmp_path / 'study.db'}"
    save_session(s, tmp_path / "s.toml")
    assert ok(llmlab(tmp_path, "check", "s.toml"))
    out = ok(llmlab(tmp_path, "sweep", "s.toml", timeout=600, LLMLAB_HEARTBEAT_S="0.2"))
    assert f"in {s.sweep.storage}" in out.replace("\n", "")
    (folder,) = (tmp_path / "runs" / "tiny").glob("sweep-*")
    assert not (folder / JOURNAL_FILE).exists()  # (the study is in the database)
    name = folder.name.removeprefix("sweep-")
    out = ok(llmlab(tmp_path, "sweep", "s.toml", "--resume", name, "--trials", "2",
                    timeout=600, LLMLAB_HEARTBEAT_S="0.2"))
    study = optuna.load_study(study_name=name, storage=s.sweep.storage)
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.COMPLETE] * 2
    assert "2 trials; more with" in out
    listed = ok(llmlab(tmp_path, "sweeps", "tiny", columns=300))
    assert name in listed and "2/2" in listed


def test_only_trials_failed_for_their_own_reason_count() -> None:
    study = optuna.create_study()
    State = optuna.trial.TrialState
    for attrs, state in (({}, State.COMPLETE), ({"error": "invalid point: ..."}, State.FAIL),
                         ({"interrupted": "the sweep was stopped at step 5"}, State.FAIL),
                         ({}, State.FAIL), ({}, State.PRUNED)):  # ({}: Optuna's stale worker)
        trial = study.ask()
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, 1.0 if state == State.COMPLETE else None, state=state)
    study.ask()  # (running: it counts, it will end one way or another)
    assert counted(study) == 4
    views = [trial_view(t) for t in study.get_trials()]
    assert [v.state for v in views] == [
        "complete", "failed", "interrupted", "interrupted", "pruned", "running"]
    assert views[3].reason == "its worker stopped; replaced"
