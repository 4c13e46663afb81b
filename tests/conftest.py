"""Shared fixtures: keep every test's token cache in its own temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, not yet created LLMLAB_CACHE_DIR, so no test writes to ~/.cache."""
    path = tmp_path_factory.mktemp("llmlab-cache") / "cache"
    monkeypatch.setenv("LLMLAB_CACHE_DIR", str(path))
    # One torch thread, chosen, so the engine does not fit threads to the machine's load: the
    # exact-resume tests compare losses to the last bit, and a thread count that changes with
    # what else runs changes the order of sums. Thread fitting is tested in test_device.py.
    monkeypatch.setenv("LLMLAB_THREADS", "1")
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy machine OpenMP threads waiting for
    each other make them many times slower. Modules opt in with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def jobs():
    """The training jobs a test starts (tests/helpers/jobs.py JobTracker); the test fails if
    one is still running at its end (each is killed first)."""
    from helpers.jobs import JobTracker

    tracker = JobTracker()
    yield tracker
    left = tracker.finish()
    assert not left, f"the test left process(es) running: pids {left}"
