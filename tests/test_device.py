"""MFU's peak FLOP/s (issue 10, item 2b) and torch's thread count on a shared machine (item 8)."""

from __future__ import annotations

import json

import pytest
import torch

from core import device, threads
from core.device import Placement, matmul_flops, mfu, observe_flops, peak_flops
from core.threads import CpuMeter, bound_tokenizer_threads, choose_threads, explicit_threads

CPU = Placement("cpu", "fp32")


@pytest.fixture
def fake_timings(monkeypatch):
    """Matmul timings from a list instead of a clock (then 1000 s: a very busy machine); a
    fresh in-process peak cache."""
    runs: list[list[float]] = []
    monkeypatch.setattr(device, "_peak_cache", {})
    monkeypatch.setattr(device, "_time_matmul",
                        lambda placement, n: runs.pop(0) if runs else [1000.0])
    return runs


def cached_on_disk(cache_dir) -> list[float]:
    return list(json.loads((cache_dir / "peak_flops.json").read_text()).values())


def test_the_peak_is_the_fastest_of_several_timings() -> None:
    assert matmul_flops(1000, [0.5, 0.002, 0.01]) == 2 * 1000**3 / 0.002


def test_a_slower_measurement_later_never_lowers_the_cached_peak(fake_timings, cache_dir,
                                                                monkeypatch) -> None:
    fast, slow = 2 * 1024**3 / 0.01, 2 * 1024**3 / 0.04
    fake_timings += [[0.02, 0.01], [0.05, 0.04]]
    assert peak_flops(CPU) == pytest.approx(fast)
    monkeypatch.setattr(device, "_peak_cache", {})  # a new process: measures again, busy
    assert peak_flops(CPU) == pytest.approx(fast)
    assert cached_on_disk(cache_dir) == [pytest.approx(fast)]
    assert slow < fast


def test_a_run_faster_than_the_peak_raises_it_and_recaches_it(fake_timings, cache_dir,
                                                             monkeypatch) -> None:
    """The issue's MFU of 100.4 %: a peak measured under load, then a run that went faster.
    The matmul is timed again; the better of it and the run's speed is the peak."""
    fake_timings += [[0.04], [0.05]]  # measured busy; re-measured still busy
    low = peak_flops(CPU)
    assert observe_flops(CPU, low / 2, low) == low  # slower than the peak: nothing to learn
    assert observe_flops(CPU, low * 1.5, low) == pytest.approx(low * 1.5)  # the run's speed
    assert cached_on_disk(cache_dir) == [pytest.approx(low * 1.5)]
    fake_timings.append([0.01])  # re-measured on a quiet machine: 4x the first figure
    assert observe_flops(CPU, low * 2, low * 1.5) == pytest.approx(low * 4)
    monkeypatch.setattr(device, "_peak_cache", {})
    fake_timings.append([0.04])
    assert peak_flops(CPU) == pytest.approx(low * 4)  # the next process starts from it


def test_mfu_never_exceeds_100_percent() -> None:
    assert mfu(2e9, 1e9) == 1.0
    assert mfu(5e8, 1e9) == 0.5
    assert mfu(1e9, 0.0) == 0.0


def test_a_training_against_a_too_low_peak_reports_at_most_100_percent(
        fake_timings, cache_dir, tmp_path, one_torch_thread) -> None:
    from helpers.sessions import tiny_session

    from core import messages as msg
    from core.engine import Engine

    fake_timings.append([1000.0])  # a peak of 2 MFLOP/s: far below what the run achieves
    events: list[msg.Event] = []
    Engine(tiny_session(tmp_path, max_steps=20, log_interval=5), events.append).train()
    steps = [e for e in events if isinstance(e, msg.StepMetrics)]
    assert steps and all(0 < e.mfu <= 1.0 for e in steps)
    assert max(e.mfu for e in steps) == 1.0  # (it was 100x and more before)
    assert cached_on_disk(cache_dir)[0] > 2 * 1024**3 / 1000  # raised to what the run achieved


# --------------------------------------------------------------------------- threads

@pytest.mark.parametrize(("affinity", "busy", "explicit", "expected"), [
    (2, 0.0, None, 2),  # a quiet machine: every core
    (2, 1.0, None, 1),  # one busy process on 2 cores: the free one
    (2, 0.3, None, 2),  # a little drawing by the app is not a core
    (2, 0.6, None, 1),
    (2, 5.0, None, 1),  # overloaded: still one thread
    (16, 3.2, None, 13),
    (2, 1.0, 4, 4),  # the user's OMP_NUM_THREADS / LLMLAB_THREADS wins
    (8, 0.0, 1, 1),
])
def test_threads_are_the_free_cores_unless_the_user_chose(affinity, busy, explicit,
                                                          expected) -> None:
    assert choose_threads(affinity, busy, explicit) == expected


def test_the_users_thread_setting_is_read_from_the_environment() -> None:
    assert explicit_threads({}) is None
    assert explicit_threads({"OMP_NUM_THREADS": "3"}) == 3
    assert explicit_threads({"OMP_NUM_THREADS": "4,2"}) == 4  # OpenMP's per-level list
    assert explicit_threads({"OMP_NUM_THREADS": "junk"}) is None
    assert explicit_threads({"OMP_NUM_THREADS": "0"}) is None
    assert explicit_threads({"LLMLAB_THREADS": "2", "OMP_NUM_THREADS": "6"}) == 2


def test_the_meter_counts_other_processes_not_our_own_work(monkeypatch) -> None:
    """2 CPUs fully busy for 1 s, of which our process used 1 s of CPU: 1 core elsewhere."""
    readings = iter([(0.0, 10.0, (1000, 2000)), (1.0, 11.0, (1200, 2200))])
    monkeypatch.setattr(CpuMeter, "_reading", lambda self: next(readings))
    meter = CpuMeter({0, 1})
    assert meter.busy_elsewhere(min_window=0.0) == pytest.approx(1.0)


def test_fit_threads_leaves_a_users_torch_setting_alone(monkeypatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LLMLAB_THREADS", raising=False)
    before = torch.get_num_threads()
    monkeypatch.setattr(device, "_threads_given", before)
    monkeypatch.setattr(threads.CpuMeter, "busy_elsewhere", lambda self, min_window=0.1: 0.0)
    try:
        assert device.fit_threads() == len(threads.affinity_cpus())
        torch.set_num_threads(1)  # the user's (or a test's) own choice
        assert device.fit_threads() == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def denormal_survives() -> bool:
    return (torch.tensor([1e-39]) * 1.5).item() != 0.0


def test_a_training_flushes_denormals_while_it_runs(tmp_path, one_torch_thread) -> None:
    """A collapsing run's weights and gradients shrink into denormals, ~50x slower on a CPU;
    after the run the process computes as before (IEEE)."""
    from helpers.sessions import tiny_session

    from core import messages as msg
    from core.engine import Engine

    seen: list[bool] = []

    def emit(event: msg.Event) -> None:
        if isinstance(event, msg.StepMetrics):
            seen.append(denormal_survives())

    assert denormal_survives()
    Engine(tiny_session(tmp_path, max_steps=3), emit).train()
    assert seen and not any(seen)
    assert denormal_survives()


PARALLEL_DENORMALS = """
import sys, torch
from core.device import flush_denormals
if sys.argv[1] == "start":
    flush_denormals()
torch.set_num_threads(2)
eye, x = torch.eye(1024) * 1.5, torch.full((1024, 1024), 1e-39)
x @ eye  # torch's thread pool exists from here on
if sys.argv[1] == "late":
    flush_denormals()
print(int(((x @ eye) != 0).sum()))  # rows computed by threads that keep denormals
"""


@pytest.mark.skipif(len(threads.affinity_cpus()) < 2, reason="needs 2 CPUs for a thread pool")
def test_flushing_at_process_start_reaches_torchs_pool_threads(tmp_path) -> None:
    """The setting is per thread and inherited at thread creation: set where a process starts
    (the CLI, the engine worker), every pool thread flushes; set after the pool exists, the
    pool threads do not (what a flush inside the training alone would give)."""
    import os
    import subprocess
    import sys

    def survivors(when: str) -> int:
        env = {**os.environ, "OMP_NUM_THREADS": "", "LLMLAB_THREADS": ""}
        out = subprocess.run([sys.executable, "-c", PARALLEL_DENORMALS, when], env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip())

    assert survivors("start") == 0
    assert survivors("late") > 0


def test_tokenizer_threads_are_bounded_to_our_cpus_or_the_users_choice(monkeypatch) -> None:
    monkeypatch.setattr(threads, "affinity_cpus", lambda: {0, 3, 5})
    env: dict[str, str] = {}
    bound_tokenizer_threads(env)
    assert env == {"RAYON_NUM_THREADS": "3"}  # not one per CPU of the machine
    env = {"LLMLAB_THREADS": "2"}
    bound_tokenizer_threads(env)
    assert env["RAYON_NUM_THREADS"] == "2"
    env = {"RAYON_NUM_THREADS": "7", "LLMLAB_THREADS": "2"}
    bound_tokenizer_threads(env)
    assert env["RAYON_NUM_THREADS"] == "7"  # the user's own setting stays
