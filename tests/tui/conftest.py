"""Fixtures for the app's tests: a private config folder, a small session, a scripted
engine factory."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.tui import FakeEngine, fake_run, small_session

from core import messages as msg
from core.session import Session


@pytest.fixture(autouse=True)
def config_dir(tmp_path_factory: pytest.TempPathFactory,
               monkeypatch: pytest.MonkeyPatch) -> Path:
    """LLMLAB_CONFIG_DIR in a temporary folder: no test reads or writes ~/.config."""
    path = tmp_path_factory.mktemp("llmlab-config")
    monkeypatch.setenv("LLMLAB_CONFIG_DIR", str(path))
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    return path


@pytest.fixture
def session(tmp_path: Path) -> Session:
    return small_session(tmp_path)


@pytest.fixture
def fake_engines() -> list[FakeEngine]:
    return []


@pytest.fixture
def fake_factory(fake_engines: list[FakeEngine]):
    """An engine factory whose engines answer Start with `fake_run()`."""

    def script(command: msg.Command) -> list[msg.Event]:
        if isinstance(command, msg.Start):
            return fake_run()
        if isinstance(command, msg.Stop):
            return [msg.Status("stopping"), msg.Status("stopped")]
        if isinstance(command, msg.Pause):
            return [msg.Status("paused")]
        if isinstance(command, msg.Resume):
            return [msg.Status("running")]
        if isinstance(command, msg.SetHparam):
            return [msg.HparamChanged(61, command.name, 0.0, command.value)]
        return []

    def factory(session: Session) -> FakeEngine:
        engine = FakeEngine(session, script)
        fake_engines.append(engine)
        return engine

    return factory


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Session, Path]:
    """(session, run folder): a tiny GPT trained once per test module on the synthetic
    corpus, for the Prune, Generate and Runs panes and the surprise heatmap. The session's
    runs_dir holds the run, so the app finds it as the session's newest."""
    from helpers.tui import train_tiny_run

    folder = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:  # (the cache fixture is per test)
        mp.setenv("LLMLAB_CACHE_DIR", str(folder / "cache"))
        run_dir = train_tiny_run(folder)
    session = small_session(folder)
    return session, run_dir


@pytest.fixture
def thread_engines() -> list:
    return []


@pytest.fixture
def thread_factory(thread_engines: list):
    """An engine factory giving the real engine, served in a thread of this process."""
    from helpers.tui import ThreadEngine

    def factory(session: Session) -> ThreadEngine:
        engine = ThreadEngine(session)
        thread_engines.append(engine)
        return engine

    yield factory
    for engine in thread_engines:
        engine.close()
