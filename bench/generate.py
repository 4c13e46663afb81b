"""Generation speed: tokens/s with and without incremental decoding (the KV cache).

    python bench/generate.py [--tokens 500] [--runs 3] [--threads N] [--skip-large]

For each model (untrained weights, vocabulary 65 as for shakespeare_char): `--tokens` new tokens
after a one-token prompt through `core.generate.generate_ids`, sampled at temperature 0.8,
cached and uncached (rerunning the model over the last `context` tokens, the nanoGPT way) in the
same run, median tokens/s over `--runs` runs, and the ratio cached/uncached:

- baby GPT: nanoGPT's shakespeare_char "baby" config, 4 layers, 4 heads, 128 wide, context 64;
- shakespeare GPT: nanoGPT's full shakespeare_char config, 6 layers, 6 heads, 384, context 256;
- LSTM, 2 layers of 256 (context 64), and the MLP (3 hidden layers of 512, window 16), for
  reference: their "cache" is the carried state and the rolling window.

Then one cached run of the baby GPT is broken down (model forward vs sampling vs the rest) and
profiled with torch.profiler: the ATen ops that take the time and how many run per token.

Findings (a 2-core VM shared with other jobs, torch 2.13 CPU; absolute figures move a lot with
the other load, the ratios much less):

- Cached vs uncached: with one thread, the cached GPT token costs ~0.7 ms (baby) and ~5-6 ms
  (shakespeare) of CPU whatever the position, while the uncached one reruns the whole window:
  ~2-3 ms for the baby GPT (ratio ~3x: per-op overhead dominates both) and ~120-140 ms for the
  context-256 GPT once the window is full (ratio ~8x over 500 tokens, whose first 256 run on
  shorter windows; ~20x per token at a full window).
- Threads: a cached token through the baby GPT is ~230 small ATen ops (~560 counting nested
  ones). With 2 OpenMP threads and the other core busy with another process, every op waits
  for a descheduled worker: a token took 10-80 ms instead of 0.7 ms, and the tests ran 5x
  slower. `--threads 1` (or OMP_NUM_THREADS=1) gives steady figures; a whole-window forward
  (training, uncached generation) is what gains from more threads.
- Where a cached baby-GPT token goes (one thread): ~90% in the model's forward, ~5% sampling
  (softmax and multinomial over 65 logits with the seeded generator), ~2-3% the Python of the
  loop and the generator. In the forward, the 17 matmuls (`aten::mm`, [1, 128] x [128, 512]
  and the like, ~8 us each, memory-bound: `mv` and 2-D `linear` are no faster) take about a
  third, SDPA ~15%, the exact GELU ~13% (erf: ~15 us for 512 numbers; the tanh form is ~4 us),
  and the rest is the dispatch of views, transposes, slices, copies, layer norms and adds at
  ~1-3 us each, plus ~50 nn.Module calls. The floor on such a small model is the op count.
- KV cache layout: tensors preallocated for the whole context and filled in place
  (`narrow().copy_()`) measured the same as growing them with `torch.cat` every token, within
  the ~10% noise, on both GPTs (CPU time, one thread); preallocation is kept because it does
  not allocate per token and its memory is known up front.
- LSTM: on CPU torch runs `nn.LSTM` through oneDNN, whose per-call setup is ~1 ms per layer:
  one cached token took ~2.7 ms before `RecurrentLM.step` switched oneDNN off for short steps,
  ~0.2 ms after. GRUs never use oneDNN.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/tokenize.py would shadow the standard library's tokenize module for scripts run from
# this folder: take the folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

import argparse
import statistics
import time
from collections.abc import Callable

import torch

VOCAB = 65

MODELS: dict[str, dict] = {
    "baby GPT (4x128, ctx 64)": dict(arch="gpt", n_layer=4, n_head=4, n_embd=128, context=64),
    "shakespeare GPT (6x384, ctx 256)": dict(arch="gpt", n_layer=6, n_head=6, n_embd=384,
                                             context=256),
    "LSTM (2x256, ctx 64)": dict(arch="lstm", n_layer=2, n_embd=256, context=64),
    "MLP (3x512, window 16)": dict(arch="mlp", n_layer=3, n_embd=32, n_hidden=512, context=16),
}
LARGE = "shakespeare GPT (6x384, ctx 256)"


def build(settings: dict):
    from core.models import build_model
    from core.session import ModelConfig

    torch.manual_seed(0)
    return build_model(ModelConfig(**settings), VOCAB).eval()


def rates(model, n_tokens: int, use_cache: bool, seed: int = 0) -> tuple[float, float]:
    """Tokens per wall-clock second and per CPU second of this process, for one run."""
    from core.generate import Sampling, generate_ids

    s = Sampling(max_tokens=n_tokens, temperature=0.8, seed=seed)
    wall, cpu = time.perf_counter(), time.process_time()
    n = sum(1 for _ in generate_ids(model, [0], s, use_cache=use_cache))
    return n / (time.perf_counter() - wall), n / (time.process_time() - cpu)


def median_rates(model, n_tokens: int, use_cache: bool, runs: int) -> tuple[float, float]:
    rates(model, 20, use_cache)  # warm up: first calls allocate and pick kernels
    measured = [rates(model, n_tokens, use_cache, seed=i) for i in range(runs)]
    return (statistics.median(wall for wall, _ in measured),
            statistics.median(cpu for _, cpu in measured))


def speed_table(names: list[str], n_tokens: int, runs: int) -> None:
    print(f"{'model':33} {'params':>7} {'cached':>8} {'uncached':>9} {'ratio':>6}"
          f" {'ratio by CPU time':>18}")
    print(f"{'':33} {'':>7} {'tok/s':>8} {'tok/s':>9}")
    for name in names:
        model = build(MODELS[name])
        cached, cached_cpu = median_rates(model, n_tokens, True, runs)
        uncached, uncached_cpu = median_rates(model, n_tokens, False, runs)
        print(f"{name:33} {model.num_params() / 1e6:6.2f}M {cached:8.0f} {uncached:9.0f} "
              f"{cached / uncached:5.1f}x {cached_cpu / uncached_cpu:17.1f}x", flush=True)


def timed(fn: Callable, totals: dict[str, float], key: str) -> Callable:
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - start
    return wrapper


def breakdown(n_tokens: int) -> None:
    """Where a cached token's time goes on the baby GPT: forward, sampling, the rest."""
    from torch.profiler import ProfilerActivity, profile

    import core.generate as gen

    model = build(MODELS["baby GPT (4x128, ctx 64)"])
    s = gen.Sampling(max_tokens=n_tokens, temperature=0.8)
    list(gen.generate_ids(model, [0], s))  # warm up
    totals = {"forward (model.step)": 0.0, "sampling": 0.0}
    original_call = gen.Sampler.__call__
    model.step = timed(model.step, totals, "forward (model.step)")
    gen.Sampler.__call__ = timed(original_call, totals, "sampling")
    try:
        start = time.perf_counter()
        list(gen.generate_ids(model, [0], s))
        total = time.perf_counter() - start
    finally:
        gen.Sampler.__call__ = original_call
        del model.step
    totals["Python (loop, generator, timers)"] = total - sum(totals.values())
    print(f"\nbaby GPT, cached, {n_tokens} tokens: {total / n_tokens * 1e6:.0f} us/token")
    for key, seconds in totals.items():
        print(f"  {key:34} {seconds / n_tokens * 1e6:7.0f} us/token {seconds / total:6.1%}")

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        list(gen.generate_ids(model, [0], gen.Sampling(max_tokens=100, temperature=0.8)))
    events = prof.key_averages()
    n_ops = sum(e.count for e in events if e.key.startswith("aten::"))
    print(f"\ntorch.profiler, 100 cached tokens: ~{n_ops / 100:.0f} ATen calls per token "
          "(nested ones included); top by self CPU time:")
    print(events.table(sort_by="self_cpu_time_total", row_limit=10))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=500, help="new tokens per run")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    ap.add_argument("--skip-large", action="store_true", help="leave out the context-256 GPT")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.tokens} new "
          f"tokens, median of {args.runs} runs; the ratio by CPU time (tokens per CPU second of "
          "this process) is the steadier figure on a shared machine\n")
    names = [n for n in MODELS if not (args.skip_large and n == LARGE)]
    speed_table(names, args.tokens, args.runs)
    breakdown(args.tokens)


if __name__ == "__main__":
    main()
