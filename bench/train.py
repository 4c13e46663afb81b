"""Training throughput and quality on nanoGPT's "baby" shakespeare_char configuration.

    python bench/train.py [CORPUS] [--iters 2000] [--precisions fp32,bf16] [--baseline-iters 300]
    python bench/train.py [CORPUS] --contention [--iters 60] [--runs 3]
    python bench/train.py [CORPUS] --nproc 1,2 [--iters 2000] [--runs 1]

Trains through llmlab's engine (char tokens, 4 layers, 4 heads, 128 wide, context 64, batch 12,
AdamW lr 1e-3 beta2 0.99, weight decay 0.1, warmup 100, cosine to 1e-4, dropout 0, clip 1.0,
90/10 split, eval every 250 iters over 200 batches) for each precision, each in a fresh
process, and prints ms/iter (median over 10-step windows), tokens/s, MFU, peak RSS and the
train/val loss every 250 iters.

The baseline, measured in the same run: a nanoGPT-style loop over the same model (plain
`torch.optim.AdamW`, batches stacked from a memmap with `torch.stack`, lr set by hand), fp32,
median ms/iter over `--baseline-iters` iterations. nanoGPT itself measured 46 ms/iter and val
loss 1.886 at iter 2000 on this machine (figures from the issue).

--nproc 1,2: DDP's overhead (bench/ddp.py): tokens/s and val loss after `--iters` steps of
`llmlab train` on each number of processes (torchrun, gloo on CPU), all with the same global
batch (fewer processes accumulate more micro-batches), alternating `--runs` times.

--contention: tokens/s of `llmlab train` (the same configuration, fp32, headless, as a user
runs it) alone and beside one competing busy process (a spinning python), alternating, each in
a fresh process; the median of `--runs` of each and their ratio. On a shared 2-core machine the
ratio fell to ~2 % (45x slower) while torch's threads spun for a core the other process held;
the goal is >= 40 %. (To measure an older llmlab, run this script with PYTHONPATH at its code.)
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/tokenize.py would shadow the standard library's tokenize module for scripts run from
# this folder: take the folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def baby_session(corpus: Path, iters: int, precision: str, runs_dir: str):
    from core.session import Session

    s = Session(name=f"bench-baby-{precision}")
    s.data.corpus = str(corpus)
    s.data.split = [0.9, 0.1, 0.0]
    m = s.model
    m.arch, m.n_layer, m.n_head, m.n_embd, m.context, m.dropout = "gpt", 4, 4, 128, 64, 0.0
    m.bias = False
    o = s.optim
    o.name, o.lr, o.betas, o.weight_decay, o.grad_clip = "adamw", 1e-3, [0.9, 0.99], 0.1, 1.0
    o.schedule, o.warmup_steps, o.min_lr = "cosine", 100, 1e-4
    t = s.train
    t.batch_size, t.max_steps, t.eval_interval, t.eval_iters = 12, iters, 250, 200
    t.log_interval, t.checkpoint_interval, t.precision, t.runs_dir = 10, 0, precision, runs_dir
    return s


def run_llmlab(corpus: Path, iters: int, precision: str) -> dict:
    """Train once in this process; return the figures."""
    import resource

    from core import messages as msg
    from core.engine import Engine

    with tempfile.TemporaryDirectory() as tmp:
        session = baby_session(corpus, iters, precision, tmp)
        steps, evals, train_loss = [], {}, {}

        def on_event(event) -> None:
            if isinstance(event, msg.StepMetrics):
                steps.append(event)
                train_loss[event.step] = event.loss
            elif isinstance(event, msg.EvalMetrics):
                evals[event.step] = event.loss
            elif isinstance(event, msg.Error):
                print(event.message, file=sys.stderr)

        wall = time.perf_counter()
        state = Engine(session, on_event).train()
        wall = time.perf_counter() - wall
    assert state == "finished", state
    tokens_per_step = 12 * 64
    windows = [e for e in steps[1:] if e.step % 10 == 0]  # full 10-step windows only
    tps = statistics.median(e.tokens_per_s for e in windows)
    return {
        "ms_per_iter": tokens_per_step / tps * 1000, "tokens_per_s": tps,
        "mfu": statistics.median(e.mfu for e in windows), "wall_s": wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "val": evals, "train": {s: train_loss.get(s) for s in evals},
    }


def run_baseline(corpus: Path, iters: int) -> dict:
    """A nanoGPT-style training loop over the same model, for a same-run ratio."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from core.dataset import load_dataset
    from core.models import build_model

    session = baby_session(corpus, iters, "fp32", "runs")
    ds = load_dataset(session.data)
    data = ds.split_tokens("train")
    torch.manual_seed(1337)
    model = build_model(session.model, ds.tokenizer.vocab_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99),
                                  weight_decay=0.1)
    block, batch = 64, 12

    def get_batch():
        ix = torch.randint(len(data) - block, (batch,))
        x = torch.stack([torch.from_numpy(data[i:i + block].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(data[i + 1:i + 1 + block].astype(np.int64))
                         for i in ix])
        return x, y

    times = []
    for it in range(iters):
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = 1e-3 * min(1.0, (it + 1) / 101)
        x, y = get_batch()
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss.item()
        times.append(time.perf_counter() - t0)
    return {"ms_per_iter": statistics.median(times[10:]) * 1000}


def cli_tokens_per_s(session_path: Path) -> float:
    """Train with `llmlab train` in a fresh process; the median tokens/s of its log windows
    (the first, which includes start-up, left out)."""
    from core.runs import read_metrics

    runs = session_path.parent / "runs"
    before = set(runs.glob("*/*"))
    out = subprocess.run([sys.executable, "-m", "llmlab", "train", str(session_path)],
                         capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
    if out.returncode != 0:
        sys.exit(f"llmlab train failed: {out.stderr.strip()}")
    (run_dir,) = set(runs.glob("*/*")) - before
    speeds = [r["tokens_per_s"] for r in read_metrics(run_dir)
              if r.get("type") == "train" and r["step"] > 1]
    return statistics.median(speeds[1:] or speeds)


def contention(corpus: Path, iters: int, runs: int) -> None:
    from core.session import save_session

    print(f"contention: nanoGPT baby config, {iters} iters a run, {runs} runs each, "
          f"corpus {corpus}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    solo, busy = [], []
    with tempfile.TemporaryDirectory() as tmp:
        session = baby_session(corpus, iters, "fp32", "runs")
        session.train.eval_interval = 0
        session.optim.warmup_steps = min(session.optim.warmup_steps, iters // 2)
        path = Path(tmp) / "contention.toml"
        save_session(session, path)
        for i in range(runs):
            solo.append(cli_tokens_per_s(path))
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            try:
                busy.append(cli_tokens_per_s(path))
            finally:
                spinner.kill()
                spinner.wait()
            print(f"  run {i + 1}: alone {solo[-1]:,.0f} tokens/s, "
                  f"beside a busy process {busy[-1]:,.0f} tokens/s")
    ratio = statistics.median(busy) / statistics.median(solo)
    print(f"median alone {statistics.median(solo):,.0f} tokens/s, beside a busy process "
          f"{statistics.median(busy):,.0f} tokens/s: {ratio:.0%} of alone (goal >= 40 %)")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


def ddp_overhead(corpus: Path, iters: int, nprocs: str, runs: int) -> None:
    """bench/ddp.py's comparison, for the process counts `nprocs` ("1,2")."""
    import importlib.util

    try:
        counts = [int(n) for n in nprocs.split(",")]
    except ValueError:
        sys.exit(f"--nproc {nprocs}: not a list of process counts (e.g. 1,2)")
    if not corpus.is_file():
        sys.exit(f"{corpus}: no such corpus (pass one as the first argument)")
    spec = importlib.util.spec_from_file_location("bench_ddp", Path(__file__).with_name("ddp.py"))
    ddp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ddp)
    ddp.compare(corpus, iters, counts, runs)


def in_subprocess(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"bench child failed: {out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--iters", type=int)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--baseline-iters", type=int, default=300)
    parser.add_argument("--contention", action="store_true",
                        help="tokens/s alone vs beside one busy process (default 60 iters)")
    parser.add_argument("--runs", type=int, help="--contention, --nproc: runs of each "
                        "(3, 1)")
    parser.add_argument("--nproc", help="process counts to compare (DDP), e.g. 1,2")
    parser.add_argument("--child", choices=("llmlab", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("LLMLAB_CACHE_DIR", str(Path(tempfile.gettempdir()) / "llmlab-bench"))
    if args.contention:
        contention(args.corpus, args.iters or 60, args.runs or 3)
        return
    if args.nproc:
        ddp_overhead(args.corpus, args.iters or 2000, args.nproc, args.runs or 1)
        return
    args.iters = args.iters or 2000
    if args.child == "llmlab":
        print(json.dumps(run_llmlab(args.corpus, args.iters, args.precision)))
        return
    if args.child == "baseline":
        print(json.dumps(run_baseline(args.corpus, args.iters)))
        return
    if not args.corpus.exists():
        sys.exit(f"{args.corpus}: no such corpus (pass one as the first argument)")
    print(f"nanoGPT baby shakespeare_char config, {args.iters} iters, corpus {args.corpus}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    def baseline() -> float:
        return in_subprocess(str(args.corpus), "--child", "baseline", "--iters",
                             str(args.baseline_iters))["ms_per_iter"]

    results = {}
    for precision in args.precisions.split(","):
        # The baseline is measured right before and after each llmlab run, and their mean
        # is the ratio's denominator: a 2-core machine's load drifts over minutes.
        before = baseline()
        results[precision] = in_subprocess(str(args.corpus), "--child", "llmlab", "--iters",
                                           str(args.iters), "--precision", precision)
        results[precision]["baseline"] = (before + baseline()) / 2
    for precision, r in results.items():
        base = {"ms_per_iter": r["baseline"]}
        print(f"\nbaseline around this run (nanoGPT-style loop, fp32): "
              f"{base['ms_per_iter']:.1f} ms/iter")
        print(f"llmlab {precision}: {r['ms_per_iter']:.1f} ms/iter "
              f"({base['ms_per_iter'] / r['ms_per_iter']:.2f}x the baseline), "
              f"{r['tokens_per_s']:,.0f} tokens/s, MFU {r['mfu']:.1%}, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB, wall {r['wall_s']:.0f} s")
        for step, val in sorted(r["val"].items(), key=lambda kv: int(kv[0])):
            train = r["train"].get(step)
            train_text = "-" if train is None else f"{train:.4f}"
            print(f"  iter {int(step):>5}: train loss {train_text}, val loss {val:.4f}")
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
