"""DDP overhead: tokens/s and val loss of 1 process vs N processes (torchrun, gloo on CPU) with
the same global batch (1 process accumulates N micro-batches per step).

    python bench/ddp.py [CORPUS] [--steps 300] [--nproc 2] [--runs 3]

Each configuration is trained `--runs` times, alternating; the figures are medians of the
runs' median logged tokens/s. On a machine with as many cores as processes the point is the
overhead of DDP (gradient all-reduce, the loss average, rank 0's broadcast of commands), not
a speed-up: one process already uses every core.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"

SESSION = """name = "ddp"
[data]
corpus = "{corpus}"
[model]
n_layer = 4
n_head = 4
n_embd = 128
context = 64
dropout = 0.0
[train]
batch_size = 8
grad_accum = {accum}
max_steps = {steps}
eval_interval = {steps}
eval_iters = 20
log_interval = 10
checkpoint_interval = 0
nproc = {nproc}
runs_dir = "{runs}"
[optim]
warmup_steps = 20
"""


def train(folder: Path, corpus: Path, steps: int, nproc: int, accum: int) -> tuple[float, float]:
    """(median tokens/s of the run's log lines after the first, final val loss)."""
    runs = folder / f"runs-{nproc}"
    path = folder / f"ddp-{nproc}.toml"
    path.write_text(SESSION.format(corpus=corpus, accum=accum, steps=steps, nproc=nproc,
                                   runs=runs))
    env = {**os.environ}
    env.pop("OMP_NUM_THREADS", None)  # (the launcher gives each process cores/N)
    done = subprocess.run([sys.executable, "-m", "llmlab", "train", str(path)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"training failed: {done.stderr[-2000:]}")
    (run,) = [p for p in (runs / "ddp").iterdir()]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    speeds = [r["tokens_per_s"] for r in records if r.get("type") == "train"][1:]
    val = [r["val_loss"] for r in records if r.get("type") == "eval"][-1]
    subprocess.run(["rm", "-rf", str(runs)])
    return statistics.median(speeds), val


def compare(corpus: Path, steps: int, nprocs: list[int], runs: int) -> None:
    """Train each process count `runs` times (alternating), all with the same global batch
    (8 x the largest count: fewer processes accumulate more micro-batches), and print their
    tokens/s, val loss and the overhead against the first count."""
    most = max(nprocs)
    if any(most % n for n in nprocs):
        sys.exit(f"--nproc {','.join(map(str, nprocs))}: each must divide the largest "
                 "(the same global batch for all)")
    figures: dict[int, list[tuple[float, float]]] = {n: [] for n in nprocs}
    print(f"global batch {8 * most} x context 64, {steps} steps, {runs} runs each "
          f"(alternating), {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            for n in nprocs:
                figures[n].append(train(Path(tmp), corpus.absolute(), steps, n, most // n))
    base = statistics.median(x for x, _ in figures[nprocs[0]])
    for n in nprocs:
        speed = statistics.median(x for x, _ in figures[n])
        val = statistics.median(v for _, v in figures[n])
        how = f"1 process x grad_accum {most}" if n == 1 else \
            f"{n} processes (DDP, gloo) x grad_accum {most // n}"
        versus = "" if n == nprocs[0] else f" ({speed / base:.2f} of {nprocs[0]}: DDP " \
            f"overhead {max(0.0, 1 - speed / base):.0%})"
        print(f"{how}: {speed:,.0f} tokens/s{versus}, val loss {val:.4f}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not args.corpus.is_file():
        sys.exit(f"{args.corpus}: no such corpus (pass one: python bench/ddp.py CORPUS)")
    compare(args.corpus, args.steps, [1, args.nproc], args.runs)


if __name__ == "__main__":
    main()
