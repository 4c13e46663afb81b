"""The Sweep pane: a study's trials (sorted by the metric, state colours), the overlaid
curves, the plots, promote into the session, a damaged journal, and a real `llmlab sweep`
started in a shell followed, then stopped from the pane."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from helpers.jobs import JOB_ENV, job_pids
from helpers.sessions import small_session
from helpers.sweeps import fake_study
from helpers.tui import notifications, screen_text, shows, sync, wait_for

from core.runs import read_metrics
from core.session import load_session, save_session
from tui.app import LlmlabApp
from tui.messages import LoadModelRequest, ResumeRunRequest


def _session_file(tmp_path: Path, trials: int = 20, parallel: int = 1, **fields) -> Path:
    session = small_session(tmp_path, name="tiny", **fields)
    session.sweep.trials, session.sweep.parallel = trials, parallel
    session.sweep.space = {"optim.lr": {"low": 1e-4, "high": 1e-2, "log": True},
                           "model.n_embd": {"choices": [32, 64]}}
    path = tmp_path / "tiny.toml"
    save_session(session, path)
    return path


async def _sweep_pane(app, pilot, reads: int = 1):
    await pilot.press("k")
    pane = app.query_one("#sweep")
    await wait_for(pilot, lambda: pane.reads >= reads and pane.state is not None, 30,
                   "the study read")
    await pilot.pause()
    return pane


@sync
async def test_trials_sorted_by_the_metric_with_their_states_and_curves(tmp_path: Path) -> None:
    fake_study(tmp_path / "runs", "tiny", 8, running=(7,), pruned=(2,), failed=(3,))
    path = _session_file(tmp_path)
    app = LlmlabApp(load_session(path), path, jobs=False)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await _sweep_pane(app, pilot)
        table = pane.table
        shown = table.trials
        bests = [t.best for t in shown if t.best is not None]
        assert bests == sorted(bests) and len(shown) == 8
        assert shown[-1].number == 3 and shown[-1].state == "failed"  # (no value: last)
        best = pane.state.best()
        assert best is not None and shown[0].number == best.number
        # state labels and their colours
        states = {t.number: t.state for t in shown}
        assert states[2] == "pruned" and states[7] == "running" and states[0] == "complete"
        colors = {}
        for row, t in enumerate(shown):
            cell = table.get_row_at(row)[table.get_column_index("state")]
            colors[t.state] = str(cell.style)
        assert len(set(colors.values())) == 4  # complete, running, pruned, failed apart
        assert "pruned at step 10" in screen_text(app) or any(
            "pruned at step 10" in t.reason for t in shown)
        # the curves: one series per trial that wrote a val loss; the pruned one dimmed
        data = pane.plot_data()
        assert sorted(int(s.label[1:]) for s in data.series) == [0, 1, 2, 4, 5, 6, 7]
        dim = {s.label: s.color for s in data.series}
        assert dim["#2"] == "plot-marker" and dim[f"#{best.number}"] == "plot-val"
        assert shows(app, "study 20260101-000000")
        # the other plots: best so far, a field against the metric, importances
        await pilot.press("n")
        assert pane.plot == "best"
        best_line = pane.plot_data().series[-1].values
        assert best_line == sorted(best_line, reverse=True)
        await pilot.press("n")
        scatter = pane.plot_data()
        assert pane.plot == "scatter" and scatter.log_x and len(scatter.series[0].steps) == 5
        await pilot.press("f")
        assert pane.plot_data().title.endswith("model.n_embd")
        await pilot.press("n")
        await pilot.pause()
        assert pane.plot == "importances" and shows(app, "optim.lr")
        await pilot.press("y")
        assert [t.number for t in pane.table.trials] == list(range(8))
        # open: a running trial is followed live (Train), another loaded for Prune/Generate
        posted: list = []
        post = pane.post_message

        def keep(message) -> bool:  # (ours are kept from the app; the rest go on)
            if isinstance(message, (LoadModelRequest, ResumeRunRequest)):
                posted.append(message)
                return True
            return post(message)

        pane.post_message = keep  # type: ignore[method-assign]
        try:
            for number, kind in ((7, ResumeRunRequest), (0, LoadModelRequest)):
                pane.table.move_cursor(row=pane.table.get_row_index(str(number)))
                await pilot.press("o")
                assert isinstance(posted[-1], kind)
                assert posted[-1].path.endswith(f"trial-{number:04d}")
        finally:
            pane.post_message = post  # type: ignore[method-assign]
        titles = [c.title for c in pane.palette_commands()]
        assert "Sweep: promote the best trial" in titles and "Sweep: stop the sweep" in titles


@sync
async def test_promote_writes_the_best_params_and_the_saved_file_reloads(tmp_path: Path
                                                                       ) -> None:
    fake_study(tmp_path / "runs", "tiny", 5)
    path = _session_file(tmp_path)
    app = LlmlabApp(load_session(path), path, jobs=False)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await _sweep_pane(app, pilot)
        best = pane.state.best()
        assert best is not None
        before = app.document.session.optim.lr
        await pilot.press("P")
        await wait_for(pilot, lambda: app.document.dirty, 10, "the edit")
        assert app.document.session.optim.lr == best.params["optim.lr"] != before
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not app.document.dirty, 10, "the save")
    again = load_session(path)
    assert again.optim.lr == best.params["optim.lr"]
    assert again.model.n_embd == best.params["model.n_embd"]


@sync
async def test_stop_reaches_a_sweep_started_elsewhere_by_its_running_trials(tmp_path: Path
                                                                           ) -> None:
    """A sweep started in a shell on this machine: the pane finds its process through the
    worker its running trials name, and stops it as Ctrl+C does (SIGINT)."""
    import socket

    from core.runs import process_start

    waiter = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                               "signal.signal(signal.SIGINT, lambda *a: sys.exit(130))\n"
                               "print('ready', flush=True)\ntime.sleep(60)\n"],
                              stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert waiter.stdout is not None and waiter.stdout.readline() == b"ready\n"
        worker = f"{socket.gethostname()}:{waiter.pid}:{process_start(waiter.pid)}"
        fake_study(tmp_path / "runs", "tiny", 3, running=(2,), worker=worker)
        path = _session_file(tmp_path)
        app = LlmlabApp(load_session(path), path, jobs=False)
        async with app.run_test(size=(80, 24)) as pilot:
            pane = await _sweep_pane(app, pilot)
            assert pane.state.workers == {worker}
            await pilot.press("x")
            assert waiter.wait(timeout=30) == 130
            await wait_for(pilot, lambda: any("stopping study" in n
                                              for n in notifications(app)), 10, "the notice")
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()


@sync
async def test_stop_reaches_a_sweep_on_another_machine_through_the_study(tmp_path: Path
                                                                       ) -> None:
    """The study's running trial is run by a process on another machine: the pane cannot
    signal it, so it asks the study to stop (what that process reads every few seconds,
    tests/test_sweep.py); a study with no trial running has nothing to stop."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    from core.sweep_storage import STOP_ATTR, stop_request

    folder = fake_study(tmp_path / "runs", "tiny", 3, running=(2,), worker="elsewhere:7:7")
    path = _session_file(tmp_path)
    app = LlmlabApp(load_session(path), path, jobs=False)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await _sweep_pane(app, pilot)
        assert pane.state.workers == {"elsewhere:7:7"}
        await pilot.press("x")
        await wait_for(pilot, lambda: any("stopping study 20260101-000000 wherever it runs" in n
                                          for n in notifications(app)), 10, "the notice")
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / "journal.log")))
    study = optuna.load_study(study_name="20260101-000000", storage=storage)
    assert study.user_attrs[STOP_ATTR]["by"].startswith(f"{socket.gethostname()}:")
    assert stop_request(study, since=0.0) is not None
    assert stop_request(study, since=study.user_attrs[STOP_ATTR]["at"] + 1) is None

    done = fake_study(tmp_path / "other" / "runs", "tiny", 2, study="20260102-000000")
    path = _session_file(tmp_path / "other")
    app = LlmlabApp(load_session(path), path, jobs=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await _sweep_pane(app, pilot)
        await pilot.press("x")
        await wait_for(pilot, lambda: any("no sweep of this study is running" in n
                                          for n in notifications(app)), 10, "the notice")
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(done / "journal.log")))
    assert STOP_ATTR not in optuna.load_study(study_name="20260102-000000",
                                              storage=storage).user_attrs


@sync
async def test_a_damaged_journal_is_one_line(tmp_path: Path) -> None:
    folder = fake_study(tmp_path / "runs", "tiny", 2)
    (folder / "journal.log").write_bytes(b"\x1b[2J{not json\n")
    path = _session_file(tmp_path)
    app = LlmlabApp(load_session(path), path, jobs=False)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await _sweep_pane(app, pilot)
        assert pane.state.error.startswith("study 20260101-000000: cannot read")
        assert "\x1b" not in pane.state.error
        assert shows(app, "cannot read") and not pane.table.display
        assert not [n for n in notifications(app) if "Traceback" in n]


@sync
async def test_no_study_says_how_to_start_one_and_start_needs_a_saved_session(
        tmp_path: Path) -> None:
    app = LlmlabApp(small_session(tmp_path, name="tiny"), None, jobs=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("k")
        pane = app.query_one("#sweep")
        await wait_for(pilot, lambda: pane.reads >= 1, 30, "the read")
        await pilot.pause()
        assert shows(app, "no sweep of tiny yet")
        assert shows(app, "the saved session's [sweep];")  # (text, not markup)
        await pilot.press("s")
        await pilot.pause()
        assert any("save the session first" in n for n in notifications(app))
        assert not pane.launched


# ---------------------------------------------------------------------- real sweeps

def _job_env(monkeypatch, tmp_path: Path) -> dict[str, str]:
    env = {**JOB_ENV, "LLMLAB_CACHE_DIR": str(tmp_path / "cache")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # (the pane's sweep job and its trials inherit them)
    return env


def test_a_sweep_started_in_a_shell_shows_while_it_runs_and_when_done(
        tmp_path: Path, monkeypatch, jobs) -> None:
    path = _session_file(tmp_path, trials=2, parallel=2, max_steps=60, eval_interval=10,
                         context=16)
    env = {**os.environ, **_job_env(monkeypatch, tmp_path), "COLUMNS": "200"}
    sweeper = subprocess.Popen([sys.executable, "-m", "llmlab", "sweep", str(path)],
                               cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    jobs.pids.append(sweeper.pid)

    @sync
    async def follow() -> None:
        app = LlmlabApp(load_session(path), path, jobs=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("k")
            pane = app.query_one("#sweep")
            await wait_for(pilot, lambda: pane.state is not None and any(
                t.state == "running" for t in pane.state.trials), 120, "a running trial")
            await wait_for(pilot, lambda: [t.state for t in pane.state.trials] ==
                           ["complete", "complete"], 240, "both trials complete")
            for t in pane.state.trials:  # (each curve: the val evals its run folder holds)
                vals = [r["step"] for r in read_metrics(Path(t.run_dir))
                        if r.get("type") == "eval" and r.get("split") == "val"]
                assert pane.state.curves[t.number].steps == vals and len(vals) >= 6, vals
            assert len(pane.plot_data().series) == 2
            assert shows(app, "2 trials, 2 complete, 0 running")

    try:
        follow()
        assert sweeper.wait(timeout=120) == 0, sweeper.stderr.read() if sweeper.stderr else ""
    finally:
        jobs.pids += job_pids(tmp_path)


def test_start_stop_and_resume_a_sweep_from_the_pane(tmp_path: Path, monkeypatch,
                                                      jobs) -> None:
    path = _session_file(tmp_path, trials=2, parallel=2, max_steps=100_000, eval_interval=10,
                         context=16)
    _job_env(monkeypatch, tmp_path)

    @sync
    async def steer() -> None:
        app = LlmlabApp(load_session(path), path, jobs=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("k")
            pane = app.query_one("#sweep")
            await pilot.press("s")
            (study,) = pane.launched
            jobs.pids.append(pane.launched[study].pid)

            def training() -> bool:
                return pane.state is not None and sum(
                    t.state == "running" and t.step >= 10 for t in pane.state.trials) == 2

            await wait_for(pilot, training, 180, "two trials training")
            await pilot.press("x")  # (as Ctrl+C: the trials stop, the sweep exits 130)
            await wait_for(pilot, lambda: pane.launched[study].poll() is not None, 180,
                           "the sweep to stop")
            assert pane.launched[study].returncode == 130
            pane.read()
            await wait_for(pilot, lambda: pane.state.trials and all(
                t.state == "interrupted" for t in pane.state.trials), 30, "interrupted")
            assert not job_pids(tmp_path)
            await pilot.press("u")  # resume: the interrupted trials are replaced
            await wait_for(pilot, lambda: pane.launched[study].poll() is None and len(
                [t for t in pane.state.trials if t.state == "running"]) == 2, 180,
                           "the resumed study training")
            jobs.pids.append(pane.launched[study].pid)
            assert len(pane.state.trials) == 4
            await pilot.press("x")
            await wait_for(pilot, lambda: pane.launched[study].poll() is not None, 180,
                           "the resumed sweep to stop")

    try:
        steer()
    finally:
        jobs.pids += job_pids(tmp_path)


def test_a_bad_study_name_is_one_line(tmp_path: Path) -> None:
    from helpers.cli import llmlab, one_line_exit_2

    _session_file(tmp_path)
    line = one_line_exit_2(llmlab(tmp_path, "sweep", "tiny.toml", "--study", "../out"))
    assert line.startswith("--study '../out': a name of letters")
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_importances_that_optuna_cannot_compute_are_one_line_computed_once(
        tmp_path: Path, monkeypatch) -> None:
    """A refresh every 2 s must not rerun a failing importance fit: the failure is kept
    until another trial completes."""
    import importlib

    from core.sweep_storage import list_sweeps
    from core.sweep_view import StudyReader

    fake_study(tmp_path / "runs", "tiny", 5)
    calls = []

    def fails(study):
        calls.append(study)
        raise RuntimeError("every trial sampled the same point")

    # (the module itself: `optuna.importance` is a lazy proxy)
    monkeypatch.setattr(importlib.import_module("optuna.importance"), "get_param_importances",
                        fails)
    (info,) = list_sweeps(tmp_path / "runs")
    reader = StudyReader(info)
    notes = [reader.read().importance_note for _ in range(3)]
    assert notes == ["importances: every trial sampled the same point"] * 3
    assert len(calls) == 1
