"""The engine in a spawned worker process (core.worker.EngineProcess), as the TUI uses it."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.sessions import tiny_session

from core import messages as msg
from core.runs import read_run_info
from core.session import Session, save_session, validate
from core.worker import EngineProcess

DEADLINE = 60.0  # seconds any one wait may take (a spawned process imports torch first)


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """The spawned workers inherit the environment: one thread suits tiny models best."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture
def workers():
    """Start workers through this; whatever a failing test leaves running is closed."""
    started: list[EngineProcess] = []

    def start(session: Session) -> EngineProcess:
        proc = EngineProcess(session).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.close(timeout=10)


def worker_session(tmp_path: Path, max_steps: int = 100_000) -> Session:
    """Trains until stopped (by default) at a constant learning rate."""
    s = tiny_session(tmp_path, name="w", max_steps=max_steps)
    s.optim.schedule, s.optim.warmup_steps = "constant", 0
    assert validate(s) == []
    return s


def wait_for(proc: EngineProcess, predicate: Callable[[msg.Event], bool],
             timeout: float = DEADLINE) -> list[msg.Event]:
    """Poll until an event matches; the events up to it, the match last. Events polled after
    the match are kept for the next call."""
    pending: list[msg.Event] = proc.__dict__.setdefault("_test_pending", [])
    events: list[msg.Event] = []
    deadline = time.monotonic() + timeout
    while True:
        while pending:
            event = pending.pop(0)
            events.append(event)
            if predicate(event):
                return events
        if time.monotonic() >= deadline:
            break
        pending += proc.poll(timeout=0.1)
    tail = ", ".join(repr(e)[:120] for e in events[-5:])
    raise AssertionError(f"no matching event within {timeout:.0f} s; last: {tail}")


def drain(proc: EngineProcess, seconds: float) -> list[msg.Event]:
    """Every event that arrives within `seconds` (and any left over by `wait_for`)."""
    pending: list[msg.Event] = proc.__dict__.setdefault("_test_pending", [])
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pending += proc.poll(timeout=0.05)
    events = list(pending)
    pending.clear()
    return events


def status(state: str) -> Callable[[msg.Event], bool]:
    return lambda e: isinstance(e, msg.Status) and e.state == state


def of(events: list[msg.Event], cls: type) -> list:
    return [e for e in events if isinstance(e, cls)]


def no_engine_children() -> bool:
    return not [p for p in multiprocessing.active_children() if p.name == "llmlab-engine"]


# --------------------------------------------------------------------------- commands


def test_pause_sethparam_resume_stop_and_close(tmp_path, workers):
    proc = workers(worker_session(tmp_path))
    proc.send(msg.Start())
    events = wait_for(proc, lambda e: isinstance(e, msg.StepMetrics))
    (started,) = of(events, msg.RunStarted)
    assert started.arch == "gpt" and started.start_step == 0

    proc.send(msg.Pause())
    events += wait_for(proc, status("paused"))
    paused_at = of(events, msg.StepMetrics)[-1].step  # the last step before the pause
    assert not of(drain(proc, 0.4), msg.StepMetrics)  # no step while paused

    proc.send(msg.SetHparam("optim.lr", 0.005))
    (changed,) = of(wait_for(proc, lambda e: isinstance(e, msg.HparamChanged)),
                    msg.HparamChanged)
    assert (changed.name, changed.old, changed.new) == ("optim.lr", 1e-2, 0.005)
    assert changed.step == paused_at + 1

    proc.send(msg.Resume())
    wait_for(proc, status("running"))
    events = wait_for(proc, lambda e: isinstance(e, msg.StepMetrics))
    assert events[-1].lr == 0.005 and events[-1].step == changed.step

    proc.send(msg.Stop())
    events = wait_for(proc, status("stopped"))
    (saved,) = of(events, msg.CheckpointSaved)
    assert Path(saved.path).is_dir() and Path(saved.path).parent.parent == Path(started.run_dir)
    assert read_run_info(Path(started.run_dir))["status"] == "stopped"

    t0 = time.monotonic()
    late = proc.close()
    assert time.monotonic() - t0 < 20
    assert not of(late, msg.Error)
    assert not proc.alive and proc.process.exitcode == 0
    assert no_engine_children()


def test_a_failed_start_keeps_the_worker_alive(tmp_path, workers):
    proc = workers(worker_session(tmp_path, max_steps=5))
    missing = tmp_path / "no-such-run"
    proc.send(msg.Start(resume=str(missing)))
    events = wait_for(proc, status("failed"))
    (error,) = of(events, msg.Error)
    assert error.fatal and "no-such-run" in error.message and "\n" not in error.message
    assert not error.message.startswith("internal error")
    assert proc.alive

    proc.send(msg.Start())
    events = wait_for(proc, status("finished"))
    assert not of(events, msg.Error)
    assert [e.step for e in of(events, msg.StepMetrics)][-1] == 5
    run_dir = Path(of(events, msg.RunStarted)[0].run_dir)
    assert read_run_info(run_dir)["status"] == "finished"

    proc.send(msg.Evaluate("val", iters=2))  # the finished run's model stays loaded
    (evaluation,) = of(wait_for(proc, lambda e: isinstance(e, msg.Evaluated)),
                       msg.Evaluated)
    assert evaluation.step == 5 and evaluation.figures["loss"] > 0
    assert evaluation.scope.startswith("sampled 2 batches of the val split")

    proc.send(msg.Start(resume=str(missing)))
    wait_for(proc, status("failed"))
    assert read_run_info(run_dir)["status"] == "finished"  # the earlier run is untouched
    assert proc.alive
    proc.close()
    assert not proc.alive


def ui_process(tmp_path: Path, session: Session, body: str) -> subprocess.CompletedProcess:
    """Run `body` in a fresh Python as the UI process: core's torch-free modules imported, the
    session (`session`, through its file in tmp_path) training in the engine process `proc`."""
    save_session(session, tmp_path / "ui.toml")
    code = textwrap.dedent(f"""
        import os, signal, sys, time
        from pathlib import Path
        from core import messages as msg
        from core.session import load_session
        from core.worker import EngineProcess

        if __name__ == "__main__":
            proc = EngineProcess(load_session(Path({str(tmp_path / "ui.toml")!r}))).start()
            proc.send(msg.Start())
    """) + textwrap.indent(textwrap.dedent(body), " " * 4)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})


def ui_session(name: str, max_steps: int, eval_interval: int) -> Session:
    s = Session(name=name)
    s.data.corpus = "sample:synthetic"
    s.model.n_layer, s.model.n_embd, s.model.n_head, s.model.context = 1, 32, 2, 16
    s.optim.warmup_steps = 0
    s.train.max_steps, s.train.batch_size, s.train.eval_interval = max_steps, 8, eval_interval
    return s


def test_the_parent_never_imports_torch(tmp_path):
    session = ui_session("p", max_steps=5, eval_interval=5)
    session.train.eval_iters = 2
    out = ui_process(tmp_path, session, """
        final, deadline = None, time.monotonic() + 60
        while final is None and time.monotonic() < deadline:
            for e in proc.poll(timeout=0.1):
                if isinstance(e, msg.Status) and e.state in ("finished", "failed"):
                    final = e.state
        proc.close()
        print(final, proc.alive, "torch" in sys.modules)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["finished", "False", "False"]


# --------------------------------------------------------------------------- dying and closing


def test_a_killed_worker_is_reported_as_an_error(tmp_path, workers):
    proc = workers(worker_session(tmp_path))
    proc.send(msg.Start())
    wait_for(proc, lambda e: isinstance(e, msg.StepMetrics))
    os.kill(proc.process.pid, signal.SIGKILL)
    events = wait_for(proc, lambda e: isinstance(e, msg.Error))
    error = events[-1]
    assert "exited unexpectedly" in error.message and str(-signal.SIGKILL) in error.message
    assert "\n" not in error.message
    assert of(wait_for(proc, status("failed"), timeout=5), msg.Status)[-1].state == "failed"
    assert proc.poll() == []  # reported once
    t0 = time.monotonic()
    proc.close()
    assert time.monotonic() - t0 < 10
    assert not proc.alive
    assert no_engine_children()


def test_close_during_training_stops_with_a_checkpoint(tmp_path, workers):
    proc = workers(worker_session(tmp_path))
    proc.send(msg.Start())
    events = wait_for(proc, lambda e: isinstance(e, msg.StepMetrics) and e.step >= 3)
    run_dir = Path(of(events, msg.RunStarted)[0].run_dir)
    t0 = time.monotonic()
    late = proc.close()
    assert time.monotonic() - t0 < 20  # it shut down, it was not terminated after 30 s
    assert not proc.alive and proc.process.exitcode == 0
    assert [e.state for e in of(late, msg.Status)][-1] == "stopped"
    (saved,) = of(late, msg.CheckpointSaved)
    assert saved.step >= 3 and Path(saved.path).is_dir()
    info = read_run_info(run_dir)
    assert info["status"] == "stopped" and info["step"] == saved.step
    assert no_engine_children()


def test_a_killed_ui_leaves_no_engine_training_on(tmp_path):
    """kill -9 of the UI (or a dropped SSH session) must not leave an orphan training."""
    session = ui_session("orphan", max_steps=100_000, eval_interval=0)
    session.train.checkpoint_interval = 0
    ui = ui_process(tmp_path, session, """
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(isinstance(e, msg.StepMetrics) for e in proc.poll(timeout=0.1)):
                break
        print(proc.process.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert ui.returncode == -signal.SIGKILL
    engine_pid = int(ui.stdout.split()[0])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(engine_pid):
        time.sleep(0.2)
    assert not _alive(engine_pid), "the engine kept running after its UI died"
    run_dir = next((tmp_path / "runs" / "orphan").iterdir())
    assert read_run_info(run_dir)["status"] == "stopped"
    assert list((run_dir / "checkpoints").glob("step-*"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(
        f"/proc/{pid}/stat").exists() else "X"
    return state not in ("Z", "X")  # a zombie has exited
