"""Where a training step's time goes: the baby GPT of bench/train.py, fp32 (one thread by default).

    python bench/profile_train.py [CORPUS] [--steps 20] [--threads 1]

MFU counts only the model's matmul FLOPs (core.estimate.flops_per_token, x3 for forward and
backward) against the peak of a large matmul (core.device.peak_flops). So a step can only reach
100 % if everything but its matmuls takes no time. This script measures three things that
together say how far from that a step is, and why:

1. torch.profiler over `--steps` training steps through llmlab's Trainer: each ATen op's own
   time, grouped (matmuls, attention, GELU, LayerNorm, loss, optimizer, gradient clipping,
   embeddings, the batch, the rest), and the wall time outside any op (Python, autograd).
   Shares, not absolute times, are what survive other load on the machine.
2. Each part alone, best of many timings (robust to a busy machine): every matmul of a step at
   its own shape, then attention, GELU, LayerNorm, the loss, AdamW and clipping; their sum
   (with 3.) against the best step says how much the step loses to caches and glue.
3. The same graph with tiny tensors (n_embd 8, context 4, batch 1): what a step costs in
   per-op overhead alone, whatever the tensor sizes.

Findings (2-core shared VM, Xeon with AVX-512 at 2.6 GHz, torch 2.13 CPU, denormals flushed
as in a real run; absolute times move with the other load, best-of timings much less):

- The denominator is honest. Per token the model counts 2 x (12 L d^2 + d V + 2 L T d) forward
  FLOPs, x3 with the backward: nanoGPT's 6N + 12 L T d (N: the weight matrices and the tied
  head; within 0.1 % of nanoGPT's N, which also counts the LayerNorm gains). Attention is
  counted unmasked, as nanoGPT and PaLM count it; counting the causal half would read 42 %
  where it reads 44 %. The CPU peak (best 1024 matmul, 330 GFLOP/s on 2 threads, 170 on one)
  is the hardware's fp32 peak: 2.6 GHz x 16 lanes x 2 (FMA) x 2 units x 2 cores = 333.
- The matmuls of a step (3.66 of the 3.96 model GFLOP) run alone at 155-173 GFLOP/s a thread,
  ~100 % of that peak: 21.2 ms on one thread, 11.5 ms on two. Their shapes are not the limit.
- Everything else, alone (best of 40; one thread / two): attention, SDPA's CPU flash kernel
  fwd + bwd x4, 6.5-7.5 / 3.7 ms for only 0.3 GFLOP (the math backend and a hand-written
  bmm + softmax are 10-15 % slower still); exact GELU fwd + bwd x4 3.3 / 1.9 ms; LayerNorm x9
  1.8 / 1.2 ms; fused AdamW 0.7 / 0.5 ms; clipping 0.5 / 0.5 ms; loss 0.13 / 0.10 ms; the
  batch 0.03 ms. Per-op overhead of the ~1,570 ATen ops (+ autograd) of a step: 2.3 / 2.4 ms,
  not shrinking with threads.
- In the step the memory-bound ops run ~2x slower than alone (GELU 7.5 ms profiled vs 3.3 ms:
  its saved input comes back from beyond L2), plus elementwise glue (residual adds, zero
  fills, the cat of q/k/v's gradients, copies) ~10 %. Profiled shares, one thread / two (`--threads
  2`, best step 28.2 ms = 43 %): matmuls 51 / 49 %, GELU 12-14 / 12 %, attention 10-11 / 9 %,
  glue + autograd nodes 10 / 11 %, outside any op (Python) 7.5 / 10 %, LayerNorm 3 / 3 %,
  optimizer + clipping 4 / 5 %; loss, embeddings and the batch under 1 % together.
- Tried without changing the math, interleaved A/B in one process (1 thread, 8-24 rounds):
  clip_grad_norm_(foreach=True) 1.00 alone (0.97-1.05 in the step: noise; on CPU it loops the
  same per-tensor norms), grads kept between steps (zero_grad(set_to_none=False)) 0.98-1.08
  (noise), q/k/v made contiguous before SDPA 0.88-0.90 (slower). Already in place: fused
  AdamW, the batch as one numpy gather, the loss as one fused op, no re-encoding per step.

So on two threads a quiet step is ~27 ms (MFU 44 %, bench/train.py), and 50 % means 24 ms:
matmuls ~11.5 ms, and ~15 ms of attention, GELU, LayerNorm (torch's kernels, fused only by a
compiler: `train.compile`), per-op overhead that threads do not divide, and memory-bound glue.
Every part at its best alone sums to ~22 ms (55 %); with the glue (~3 ms) ~25 ms (48 %); the
rest is the step's working set (the activations saved for the backward, ~20 MB) coming back
from beyond the 2 MB L2. Only fusing (compile) or other math (tanh GELU, another attention)
removes those passes over memory; nothing left in eager fp32 moves the 3 ms. On one core the
same step reaches 51-54 % of a one-core peak (best steps 43-49 ms against 170 GFLOP/s).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

import argparse
import collections
import os
import statistics
import tempfile
import time
from collections.abc import Callable

GROUPS = {
    "matmul": ("aten::mm", "aten::bmm", "aten::addmm"),
    "attention": ("scaled_dot_product",),
    "gelu": ("gelu",),
    "layernorm": ("layer_norm",),
    "loss": ("softmax", "nll_loss"),
    "optimizer": ("adamw", "zero_grad", "Optimizer"),
    "clip": ("vector_norm", "_foreach_norm", "aten::mul_", "aten::stack", "aten::clamp"),
    "embedding": ("embedding", "index_select"),
    "batch": ("randint", "random_", "from_numpy"),
}


def group_of(name: str) -> str:
    low = name.lower()
    for group, keys in GROUPS.items():
        if any(k.lower() in low for k in keys):
            return group
    return "elementwise glue + autograd"


def best_of(fn: Callable[[], object], n: int = 40) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def trainer_for(corpus: Path, threads: int, tiny: bool = False):
    import torch
    from bench_train import baby_session

    from core.trainer import Trainer

    session = baby_session(corpus, 10**6, "fp32", tempfile.mkdtemp())
    if tiny:
        session.model.n_embd, session.model.context, session.train.batch_size = 8, 4, 1
    trainer = Trainer.create(session, lambda event: None)
    torch.set_num_threads(threads)  # after the trainer: it fits threads to the free cores
    for _ in range(10):
        trainer.train_step()
    return trainer


def profile_shares(trainer, steps: int) -> collections.Counter:
    from torch.profiler import profile

    with profile(record_shapes=True) as prof:
        wall = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        wall = time.perf_counter() - wall
    spent: collections.Counter = collections.Counter()
    for e in prof.key_averages():
        spent[group_of(e.key)] += e.self_cpu_time_total / 1e6
    spent["outside any op (Python)"] = wall - sum(spent.values())
    print(f"\n1. profile of {steps} steps: {wall / steps * 1e3:.1f} ms/step with the profiler on")
    for group, seconds in spent.most_common():
        print(f"  {group:30s} {seconds / steps * 1e3:7.2f} ms  {seconds / wall:6.1%}")
    shapes: collections.Counter = collections.Counter()
    for e in prof.key_averages(group_by_input_shape=True):
        if e.key == "aten::mm":
            shapes[tuple(map(tuple, e.input_shapes[:2]))] += e.count // steps
    return shapes


def parts_alone(trainer, shapes: collections.Counter, peak: float) -> float:
    import torch
    import torch.nn.functional as F

    mm_time = mm_flops = 0.0
    for (a, b), count in shapes.items():
        x, w = torch.randn(*a), torch.randn(*b)
        mm_time += best_of(lambda x=x, w=w: x @ w) * count
        mm_flops += 2 * a[0] * a[1] * b[1] * count
    print(f"\n2. alone, best of 40 (a 1024 matmul now: {peak / 1e9:.0f} GFLOP/s):")
    print(f"  matmuls of a step     {mm_time * 1e3:7.2f} ms  ({mm_flops / 1e9:.2f} GFLOP at "
          f"{mm_flops / mm_time / 1e9:.0f} GFLOP/s)")
    total = mm_time
    cfg, batch = trainer.session.model, trainer.session.train.batch_size
    B, T, C, H = batch, cfg.context, cfg.n_embd, cfg.n_head
    qkv = torch.randn(B, T, 3 * C, requires_grad=True)
    hidden = torch.randn(B, T, 4 * C, requires_grad=True)
    x = torch.randn(B, T, C, requires_grad=True)
    norm = torch.nn.LayerNorm(C, bias=cfg.bias)
    logits = torch.randn(B, T, trainer.dataset.tokenizer.vocab_size, requires_grad=True)
    targets = torch.randint(logits.size(-1), (B, T))

    def attention():
        q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in qkv.split(C, dim=2))
        F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()

    for p in trainer.model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    parts = {
        "attention fwd+bwd": (attention, cfg.n_layer),
        "GELU fwd+bwd": (lambda: F.gelu(hidden).sum().backward(), cfg.n_layer),
        "LayerNorm fwd+bwd": (lambda: norm(x).sum().backward(), 2 * cfg.n_layer + 1),
        "loss fwd+bwd": (lambda: F.cross_entropy(logits.flatten(0, 1),
                                                 targets.flatten()).backward(), 1),
        "AdamW step": (trainer.optimizer.step, 1),
        "clip_grad_norm_": (lambda: torch.nn.utils.clip_grad_norm_(
            trainer.model.parameters(), 1.0), 1),
    }
    for name, (fn, times) in parts.items():
        seconds = best_of(fn) * times
        total += seconds
        print(f"  {name:21s} {seconds * 1e3:7.2f} ms  (x{times})")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "data"
                        / "tinyshakespeare.txt")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"{args.corpus}: no such corpus (pass one as the first argument)")
    os.environ["LLMLAB_THREADS"] = str(args.threads)
    os.environ.setdefault("LLMLAB_CACHE_DIR", str(Path(tempfile.gettempdir()) / "llmlab-bench"))
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_train", Path(__file__).with_name(
        "train.py"))
    sys.modules["bench_train"] = module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    from core.device import _time_matmul, flush_denormals, matmul_flops, peak_flops

    flush_denormals()  # as a training through the engine or the worker runs
    trainer = trainer_for(args.corpus, args.threads)
    steps = [best_of(trainer.train_step, 1) for _ in range(40)]
    # core.device's peak (the best ever seen) is the whole machine's: with fewer threads than
    # cores, a 1024 matmul timed now on the threads given here (low if others are busy)
    peak = matmul_flops(1024, _time_matmul(trainer.placement, 1024, 40))
    if args.threads >= (os.cpu_count() or 1):
        peak = max(peak, peak_flops(trainer.placement))
    model_flops = 3 * trainer.flops_per_token * trainer.tokens_per_step
    print(f"baby GPT, fp32, {args.threads} thread(s), {model_flops / 1e9:.2f} model GFLOP a "
          f"step; step best {min(steps) * 1e3:.1f} ms (MFU {model_flops / min(steps) / peak:.0%}),"
          f" median {statistics.median(steps) * 1e3:.1f} ms; "
          f"load average {os.getloadavg()[0]:.2f}")
    shapes = profile_shares(trainer, args.steps)
    parts = parts_alone(trainer, shapes, peak)
    tiny = trainer_for(args.corpus, args.threads, tiny=True)
    overhead = min(best_of(tiny.train_step, 1) for _ in range(200))
    print(f"\n3. the same graph with tiny tensors: {overhead * 1e3:.2f} ms a step of per-op "
          f"overhead alone")
    print(f"\nparts alone + per-op overhead: {(parts + overhead) * 1e3:.1f} ms; the best step "
          f"{min(steps) * 1e3:.1f} ms (the rest: elementwise glue, caches, thread hand-offs)")


if __name__ == "__main__":
    main()
