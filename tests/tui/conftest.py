"""Fixtures for the app's tests: a private config folder, a small session, a scripted
engine factory."""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_helpers import FakeEngine, fake_run, small_session

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
