"""What pruning and int8 quantization cost, on a model trained on a real corpus.

    python bench/compress.py [CORPUS] [--run RUN_DIR] [--train-steps 2000] [--finetune 100]

Trains nanoGPT's baby shakespeare_char GPT (unless `--run` names a finished run), then prints:
1. the sparsity sweep: val loss on one fixed val sample at 0%, 10%, ... 95% for magnitude,
   global, random and structured pruning, one-shot, and the time one level takes (what the
   Prune pane's slider waits for: median over the levels, with the dense evaluation alone as
   the baseline in the same run);
2. the same at 30/50/70/90% after `--finetune` steps of fine-tuning each;
3. the int8 table: file size, loss and latency of dense, int8, and magnitude-50% + int8.
The published pattern to compare with: magnitude pruning to 50% with brief fine-tuning costs
little; random pruning costs much more.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/tokenize.py would shadow the standard library's tokenize module for scripts run from
# this folder: take the folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

import argparse
import os
import statistics
import tempfile
import time

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
METHODS = ("magnitude", "global", "random", "structured")
FINETUNE_LEVELS = (0.3, 0.5, 0.7, 0.9)


def _train(corpus: Path, steps: int, runs_dir: str) -> Path:
    from core import messages as msg
    from core.engine import Engine
    from core.session import Session

    s = Session(name="bench-compress")
    s.data.corpus = str(corpus)
    m = s.model
    m.n_layer, m.n_head, m.n_embd, m.context, m.dropout = 4, 4, 128, 64, 0.0
    s.optim.betas, s.optim.warmup_steps = [0.9, 0.99], min(100, steps // 10)
    t = s.train
    t.batch_size, t.max_steps, t.eval_interval, t.eval_iters = 12, steps, steps, 50
    t.log_interval, t.checkpoint_interval, t.runs_dir = 100, 0, runs_dir
    run = []

    def on_event(e) -> None:
        if isinstance(e, msg.RunStarted):
            run.append(e.run_dir)
        elif isinstance(e, msg.EvalMetrics):
            print(f"  trained: step {e.step}, val loss {e.loss:.4f}", flush=True)
        elif isinstance(e, msg.Error):
            sys.exit(e.message)

    print(f"training the baby GPT for {steps} steps on {corpus} ...", flush=True)
    Engine(s, on_event).train()
    return Path(run[0])


def sweep_table(wb) -> None:
    print("\n1. one-shot sweep: val loss (top-1) on a fixed val sample "
          f"({len(wb.evalset.x)} batches of {wb.evalset.x[0].shape[0]})")
    t = time.perf_counter()
    dense = wb.dense_figures()
    dense_s = time.perf_counter() - t
    rows: dict[float, list[str]] = {}
    level_s: list[float] = []
    last = [0.0]

    def timed_point(_point) -> None:
        now = time.perf_counter()
        level_s.append(now - last[0])
        last[0] = now

    for method in METHODS:
        last[0] = time.perf_counter()
        for p in wb.sweep(method, on_point=timed_point):
            rows.setdefault(p.sparsity, []).append(f"{p.loss:.3f} ({p.top1:.1%})")
    print(f"{'sparsity':>8}  " + "  ".join(f"{m:>16}" for m in METHODS))
    for level, cells in rows.items():
        print(f"{level:>8.0%}  " + "  ".join(f"{c:>16}" for c in cells))
    print(f"dense: loss {dense.loss:.3f}; one sweep level (prune + evaluate): median "
          f"{statistics.median(level_s) * 1000:.0f} ms, p95 "
          f"{sorted(level_s)[int(0.95 * (len(level_s) - 1))] * 1000:.0f} ms; dense measure "
          f"with latency and size (baseline) {dense_s * 1000:.0f} ms")


def finetune_table(wb, steps: int) -> None:
    print(f"\n2. after {steps} fine-tuning steps: val loss, one-shot -> fine-tuned")
    print(f"{'sparsity':>8}  " + "  ".join(f"{m:>18}" for m in METHODS))
    for level in FINETUNE_LEVELS:
        cells = []
        for method in METHODS:
            before = wb.prune(method, level).loss
            after = wb.finetune(steps).loss
            cells.append(f"{before:.3f} -> {after:.3f}")
        print(f"{level:>8.0%}  " + "  ".join(f"{c:>18}" for c in cells))


def int8_table(wb) -> None:
    print("\n3. int8 (dynamic quantization, CPU)")
    dense = wb.dense_figures()
    wb.reset()
    int8 = wb.quantize()
    wb.reset()
    wb.prune("magnitude", 0.5)
    both = wb.quantize()
    print(f"{'model':<24}{'file MB':>9}{'size':>7}{'val loss':>10}{'delta':>9}"
          f"{'latency ms':>12}{'speed':>7}")
    for f in (dense, int8, both):  # (a latency too noisy to trust is "–", and no speed)
        trusted = f.latency_ms is not None and dense.latency_ms is not None
        print(f"{f.label:<24}{f.size_bytes / 1e6:>9.2f}{f.size_bytes / dense.size_bytes:>6.2f}x"
              f"{f.loss:>10.4f}{f.loss - dense.loss:>+9.4f}"
              f"{'–' if f.latency_ms is None else f'{f.latency_ms:.2f}':>12}"
              f"{f'{dense.latency_ms / f.latency_ms:.2f}x' if trusted else '–':>7}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--run", type=Path, help="a finished run to compress instead")
    parser.add_argument("--train-steps", type=int, default=2000)
    parser.add_argument("--finetune", type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault("LLMLAB_CACHE_DIR", str(Path(tempfile.gettempdir()) / "llmlab-bench"))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    from core.workbench import Workbench

    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is None:
            if not args.corpus.exists():
                sys.exit(f"{args.corpus}: no such corpus (pass one, or --run)")
            run = _train(args.corpus, args.train_steps, tmp)
        wb = Workbench(run)
        sweep_table(wb)
        finetune_table(wb, args.finetune)
        int8_table(wb)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
