"""The latency figure: the rule that turns timings into a shown figure or "–", and the timing
itself (its threads, its warm-up, giving up when asked)."""

from __future__ import annotations

import pytest

from core.latency import (
    MAX_SPREAD,
    REPS,
    TIMING_THREADS,
    format_latency,
    latency_ms,
    shown_latency,
    slower_than,
    time_forward,
    time_token_steps,
    token_latency_ms,
)


def test_steady_timings_show_their_median_in_ms() -> None:
    times = [0.0010, 0.0011, 0.0009, 0.0010, 0.0012, 0.0010, 0.0011, 0.0010, 0.0009]
    assert shown_latency(times, reps=9) == pytest.approx(1.0)
    assert format_latency(shown_latency(times, reps=9)) == "1.00 ms"


def test_a_few_outliers_do_not_move_the_median() -> None:
    # Two passes of nine descheduled for a scheduler slice: the figure is still the model's.
    times = [0.0004] * 7 + [0.110, 0.160]
    assert shown_latency(times, reps=9) == pytest.approx(0.4)


def test_timings_that_spread_widely_are_not_shown() -> None:
    # What a busy 2-core machine gave with two threads: some passes 0.4 ms, some 110+ ms.
    times = [0.0004, 0.0004, 0.0004, 0.0004, 0.110, 0.112, 0.118, 0.119, 0.120]
    assert shown_latency(times, reps=9) is None
    assert format_latency(None) == "–"
    # The edge: an interquartile range of exactly MAX_SPREAD times the median is still shown.
    q = [1.0, 1.0, 1.0 - MAX_SPREAD / 2, 1.0, 1.0, 1.0, 1.0 + MAX_SPREAD / 2, 1.0, 1.0]
    assert shown_latency(sorted(q), reps=9, max_spread=MAX_SPREAD) is not None


def test_an_interrupted_measurement_is_not_shown() -> None:
    assert shown_latency([0.001] * 4, reps=9) is None
    assert shown_latency([], reps=9) is None
    assert shown_latency([0.001, 0.0, 0.001], reps=3) is None  # (a clock that did not move)


def test_time_forward_uses_the_timing_threads_and_restores_them() -> None:
    import torch

    seen: list[int] = []

    class Probe(torch.nn.Module):
        context = 8

        def forward(self, idx):
            seen.append(torch.get_num_threads())
            return idx.float()

    threads = torch.get_num_threads()
    times = time_forward(Probe(), 8, 17, reps=4, warmup=2)
    assert len(times) == 4 and len(seen) == 6  # two warm-up passes are not timed
    assert set(seen) == {TIMING_THREADS}
    assert torch.get_num_threads() == threads
    with pytest.raises(ValueError):
        time_forward(Probe(), 8, 17, reps=0)

    # Asked to give up after three passes: an interrupted measurement, shown as "–".
    calls = iter(range(100))
    assert latency_ms(Probe(), 8, 17, should_stop=lambda: next(calls) >= 3) is None
    assert len(time_forward(Probe(), 8, 17)) == REPS


def test_token_steps_time_one_token_through_the_cache_after_a_prefill() -> None:
    import torch

    steps: list[tuple[int, int]] = []  # (tokens in, threads)

    class Probe(torch.nn.Module):
        context = 32

        def init_state(self, batch: int = 1) -> list[int]:
            return []

        def step(self, idx, state):
            steps.append((idx.shape[1], torch.get_num_threads()))
            return idx.float(), state + [idx.shape[1]]

    threads = torch.get_num_threads()
    times = time_token_steps(Probe(), 17, prompt=8, reps=4, warmup=2)
    assert len(times) == 4
    assert steps == [(8, TIMING_THREADS)] + [(1, TIMING_THREADS)] * 6  # prefill, then 1 token
    assert torch.get_num_threads() == threads
    calls = iter(range(100))
    assert token_latency_ms(Probe(), 17, should_stop=lambda: next(calls) >= 3) is None


def test_slower_than_names_each_trusted_figure_that_is_slower() -> None:
    from core.values import ModelFigures

    def figures(window: float | None, token: float | None) -> ModelFigures:
        return ModelFigures("x", 10, 10, 0.0, 40, 1.0, 2.7, 0.5, 0.9, window, token_ms=token)

    dense = figures(2.0, 0.8)
    assert slower_than(dense, figures(1.7, 0.6)) == ""  # faster on both
    assert slower_than(dense, figures(1.7, 1.0)) == "0.80x per token"
    assert slower_than(dense, figures(2.5, 1.0)) == "0.80x per window, 0.80x per token"
    assert slower_than(dense, figures(None, None)) == ""  # untrusted: no verdict
