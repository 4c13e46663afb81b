"""Latency: how long one forward pass of a model takes, as a figure that can be trusted.

A latency in a before/after table is only worth showing if timing the same model again gives
the same number. Three things made it lie before (a dense model shown at 205 ms that runs in
1.4 ms, "141x faster" after pruning):

- Threads. A batch-1 forward of a small model is many small ops, each one an OpenMP parallel
  region that waits for every intra-op thread. On a shared machine (another process busy on
  one of two cores, or the app drawing beside the engine) a worker thread is often not
  running, and every op waits a scheduler slice for it: the same model timed 0.4 ms or
  110-160 ms from one measurement to the next, with 2 threads; 0.42-0.52 ms with 1. So a
  forward is timed on the CPU with one thread (`TIMING_THREADS`), the same for the dense
  model and every candidate, whatever the engine's thread count is meanwhile.
- Warm-up. The first passes allocate and pick kernels: `warmup` untimed passes come first.
- Noise. The figure is the median of `reps` timings, and `shown_latency` refuses it (None,
  shown as "–") when the timings spread too widely to mean anything, or when the measurement
  was interrupted (fewer timings than asked).

The caller measures when nothing else runs in its process: the engine handles one command at
a time (a sweep or a fine-tuning is over before a forward is timed), and the CLI draws its
progress without a refresh thread.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (the app shows these figures and never imports torch)
    from torch import nn

    from core.messages import ModelFigures

TIMING_THREADS = 1  # intra-op threads while a forward is timed on the CPU
WARMUP = 3
REPS = 9
MAX_SPREAD = 0.5  # the widest interquartile range, as a fraction of the median, still shown


def shown_latency(seconds: Sequence[float], reps: int = REPS,
                  max_spread: float = MAX_SPREAD) -> float | None:
    """The latency to show, in milliseconds, from the timings of `reps` forward passes (in
    seconds): their median, or None when it cannot be trusted: fewer timings than `reps` (the
    measurement was interrupted), or an interquartile range wider than `max_spread` times the
    median (the machine was busy in a way that changed from pass to pass)."""
    if reps < 1 or len(seconds) < reps or any(not t > 0 for t in seconds):
        return None
    median = statistics.median(seconds)
    if len(seconds) >= 4:
        q1, _, q3 = statistics.quantiles(seconds, n=4, method="inclusive")
        if q3 - q1 > max_spread * median:
            return None
    return 1000.0 * median


@contextlib.contextmanager
def timing_threads(device: str) -> Iterator[None]:
    """`TIMING_THREADS` intra-op threads on the CPU for the duration (a GPU needs no change)."""
    import torch

    if not str(device).startswith("cpu"):
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(TIMING_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def time_forward(model: nn.Module, context: int, vocab: int, batch: int = 1, reps: int = REPS,
                 warmup: int = WARMUP, device: str = "cpu",
                 should_stop: Callable[[], bool] | None = None) -> list[float]:
    """Wall times in seconds of `reps` forward passes over a `[batch, context]` window of
    random tokens (fixed seed), after `warmup` untimed ones, with `timing_threads`. Fewer
    timings come back when `should_stop()` (asked before each pass) says to give up."""
    import torch

    from core.evaluate import eval_mode

    if reps < 1:
        raise ValueError(f"time_forward needs reps >= 1 (got {reps})")
    generator = torch.Generator().manual_seed(0)
    idx = torch.randint(vocab, (batch, context), generator=generator).to(device)
    times: list[float] = []
    with eval_mode(model), timing_threads(device):
        for i in range(warmup + reps):
            if should_stop is not None and should_stop():
                break
            _sync(device)
            start = time.perf_counter()
            model(idx)
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times


def latency_ms(model: nn.Module, context: int, vocab: int, batch: int = 1, reps: int = REPS,
               warmup: int = WARMUP, device: str = "cpu",
               should_stop: Callable[[], bool] | None = None) -> float | None:
    """The median forward time in milliseconds, or None when it cannot be trusted (see
    `shown_latency`)."""
    times = time_forward(model, context, vocab, batch, reps, warmup, device, should_stop)
    return shown_latency(times, reps)


def time_token_steps(model: nn.Module, vocab: int, prompt: int = 8, reps: int = REPS,
                     warmup: int = WARMUP, device: str = "cpu",
                     should_stop: Callable[[], bool] | None = None) -> list[float]:
    """Wall times in seconds of `reps` one-token steps of cached generation (`model.step`
    with its KV cache or carried state, as the Generate pane runs it), after a `prompt`-token
    prefill and `warmup` untimed steps, with `timing_threads`. A model can be faster than
    another over a whole window and slower one token at a time (int8's cost per call is
    larger): both figures are shown."""
    import torch

    from core.evaluate import eval_mode

    if reps < 1:
        raise ValueError(f"time_token_steps needs reps >= 1 (got {reps})")
    generator = torch.Generator().manual_seed(0)
    idx = torch.randint(vocab, (1, max(1, min(prompt, model.context // 4))),
                        generator=generator).to(device)
    times: list[float] = []
    with eval_mode(model), timing_threads(device):
        _, state = model.step(idx, model.init_state(1))
        token = idx[:, -1:]
        for i in range(warmup + reps):
            if should_stop is not None and should_stop():
                break
            _sync(device)
            start = time.perf_counter()
            _, state = model.step(token, state)
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times


def token_latency_ms(model: nn.Module, vocab: int, reps: int = REPS, device: str = "cpu",
                     should_stop: Callable[[], bool] | None = None) -> float | None:
    """The median time of one generated token in milliseconds, or None when it cannot be
    trusted (see `shown_latency`)."""
    times = time_token_steps(model, vocab, reps=reps, device=device, should_stop=should_stop)
    return shown_latency(times, reps)


def slower_than(dense: ModelFigures, other: ModelFigures) -> str:
    """"" when `other` is at least as fast as `dense` on every trusted latency, else what is
    slower, e.g. "0.93x per window, 0.80x per token": a compression that is slower to run
    is no speed-up, and the tables say so rather than offer it as one."""
    ratios = []
    for what, mine, theirs in (("per window", dense.latency_ms, other.latency_ms),
                               ("per token", dense.token_ms, other.token_ms)):
        if mine is not None and theirs is not None and theirs > 0 and mine / theirs < 1:
            ratios.append(f"{mine / theirs:.2f}x {what}")
    return ", ".join(ratios)


def format_latency(ms: float | None) -> str:
    """"1.23 ms", or "–" for a figure that could not be trusted."""
    return "–" if ms is None else f"{ms:.2f} ms"


def _sync(device: str) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
