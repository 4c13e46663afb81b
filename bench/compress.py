"""What pruning and int8 quantization cost, on a model trained on a real corpus.

    python bench/compress.py [CORPUS] [--run RUN_DIR] [--train-steps 2000] [--finetune 100]
                             [--paths-only] [--gpt10m-run RUN_DIR] [--gpt10m-steps 300]

Trains nanoGPT's baby shakespeare_char GPT (unless `--run` names a finished run), then prints:
1. the sparsity sweep: val loss on one fixed val sample at 0%, 10%, ... 95% for magnitude,
   global, random and structured pruning, one-shot, and the time one level takes (what the
   Prune pane's slider waits for: median over the levels, with the dense evaluation alone as
   the baseline in the same run);
2. the same at 30/50/70/90% after `--finetune` steps of fine-tuning each;
3. the int8 table: file size, loss and latency of dense, int8, and magnitude-50% + int8;
4. the int8 paths side by side, on the baby GPT and on nanoGPT's 10.7M shakespeare_char GPT
   (6x384, context 256; trained `--gpt10m-steps` unless `--gpt10m-run` names a run): torch.ao
   dynamic with fbgemm kernels, and with oneDNN's for large calls and fbgemm's for small ones
   (core.quantize's choice on a CPU with AMX), per-row and per-matrix scales, and torchao's
   `quantize_` (Int8DynamicActivationInt8WeightConfig) when installed: file size, val loss, one
   window's latency and cached generation's ms/token, each the median of interleaved rounds
   with fp32 timed in the same rounds, one thread (as the Prune pane times). `--paths-only`
   prints only this table.
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


def _train(corpus: Path, steps: int, runs_dir: str, big: bool = False) -> Path:
    from core import messages as msg
    from core.engine import Engine
    from core.session import Session

    s = Session(name="bench-compress")
    s.data.corpus = str(corpus)
    m = s.model
    m.n_layer, m.n_head, m.n_embd, m.context, m.dropout = (6, 6, 384, 256, 0.0) if big else (
        4, 4, 128, 64, 0.0)
    s.optim.betas, s.optim.warmup_steps = [0.9, 0.99], min(100, steps // 10)
    t = s.train
    t.batch_size, t.max_steps, t.eval_interval, t.eval_iters = 12, steps, steps, 50
    if big:
        s.name, t.batch_size, t.eval_iters = "bench-compress-10m", 8, 10
    t.log_interval, t.checkpoint_interval, t.runs_dir = 100, 0, runs_dir
    run = []

    def on_event(e) -> None:
        if isinstance(e, msg.RunStarted):
            run.append(e.run_dir)
        elif isinstance(e, msg.EvalMetrics):
            print(f"  trained: step {e.step}, val loss {e.loss:.4f}", flush=True)
        elif isinstance(e, msg.Error):
            sys.exit(e.message)

    name = "10.7M" if big else "baby"
    print(f"training the {name} GPT for {steps} steps on {corpus} ...", flush=True)
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


PATH_ROUNDS = 5  # interleaved rounds; each times every model (window: 7 passes, generation: 1)


def int8_paths(label: str, wb) -> None:
    """Every int8 path on one model: size, loss and speed against fp32 timed in the same rounds."""
    import torch

    from core.latency import time_forward
    from core.prune import evaluate_fixed
    from core.quantize import model_size_bytes, quantize_int8, state_dict_bytes

    dense = wb.model.cpu().eval()
    evalset = wb.evalset.to("cpu")
    engines = [e for e in ("fbgemm", "onednn") if e in torch.backends.quantized.supported_engines]
    paths = {"fp32": dense}
    for engine in engines:
        for per_channel in (True, False):
            kernels = "oneDNN+fbgemm" if engine == "onednn" else engine  # (TwoEngineLinear)
            name = f"torch.ao {kernels} per-{'row' if per_channel else 'matrix'}"
            paths[name] = quantize_int8(dense, per_channel=per_channel, engine=engine)
    paths.update(_torchao_path(dense))
    window: dict[str, list[float]] = {k: [] for k in paths}
    token: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(PATH_ROUNDS):
        for name, model in paths.items():
            window[name] += time_forward(model, dense.context, dense.vocab_size, reps=7)
            token[name].append(_generation_ms(model))
    fp32_loss = evaluate_fixed(dense, evalset).loss
    print(f"\n4. int8 paths: {label} ({sum(p.numel() for p in dense.parameters()) / 1e6:.1f}M "
          f"params, context {dense.context}); median of {PATH_ROUNDS} interleaved rounds, "
          f"1 thread; chosen engine: {_chosen_engine()}")
    print(f"{'path':<34}{'file MB':>8}{'smaller':>8}{'val loss':>9}{'delta':>8}"
          f"{'window ms':>10}{'speed':>7}{'spread':>13}{'gen ms/tok':>11}{'speed':>7}")
    fp32_w, fp32_t = statistics.median(window["fp32"]), statistics.median(token["fp32"])
    fp32_size = model_size_bytes(dense)
    for name, model in paths.items():
        size = state_dict_bytes(model) if name.startswith("torchao") else model_size_bytes(model)
        loss = evaluate_fixed(model, evalset).loss
        w, tk = statistics.median(window[name]), statistics.median(token[name])
        ratios = sorted(f / x for f, x in zip(window["fp32"], window[name], strict=True))
        spread = f"{ratios[len(ratios) // 10]:.2f}-{ratios[-1 - len(ratios) // 10]:.2f}x"
        print(f"{name:<34}{size / 1e6:>8.2f}{fp32_size / size:>7.2f}x{loss:>9.4f}"
              f"{(loss - fp32_loss) / fp32_loss:>+8.1%}{w * 1e3:>10.2f}{fp32_w / w:>6.2f}x"
              f"{spread:>13}{tk:>11.3f}{fp32_t / tk:>6.2f}x")
    print("spread: the 10th-90th percentile of the window speed-up, pass by pass; file MB of "
          "torchao is its torch.save state_dict")


def _chosen_engine() -> str:
    from core.quantize import int8_engine

    return int8_engine()


def _torchao_path(dense) -> dict:
    """torchao's maintained int8 path, when torchao is installed (not a dependency)."""
    import copy
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except Exception as e:  # not installed, or built for another torch
        print(f"(torchao path left out: {type(e).__name__})")
        return {}
    model = copy.deepcopy(dense)
    if model.lm_head.weight is model.transformer.wte.weight:  # untie: the head becomes int8
        model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    quantize_(model, Int8DynamicActivationInt8WeightConfig())
    return {"torchao quantize_ int8/int8": model}


def _generation_ms(model, prompt: int = 16, new: int = 64) -> float:
    """Milliseconds per token of cached generation: a `prompt`-token prefill, then `new`
    one-token steps through the KV cache (greedy; the cost is the model's, not the sampler's)."""
    import torch

    from core.latency import timing_threads

    generator = torch.Generator().manual_seed(0)
    idx = torch.randint(model.vocab_size, (1, prompt + 1), generator=generator)
    with torch.no_grad(), timing_threads("cpu"):
        state = model.init_state(1)
        model.step(idx[:, :prompt], state)
        token = idx[:, prompt:]
        start = time.perf_counter()
        for _ in range(new):
            logits, state = model.step(token, state)
            token = logits[:, -1:].argmax(-1)
        return (time.perf_counter() - start) * 1000 / new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--run", type=Path, help="a finished run to compress instead")
    parser.add_argument("--train-steps", type=int, default=2000)
    parser.add_argument("--finetune", type=int, default=100)
    parser.add_argument("--paths-only", action="store_true",
                        help="print only table 4 (the int8 paths side by side)")
    parser.add_argument("--gpt10m-run", type=Path, help="a finished 6x384 GPT run for table 4")
    parser.add_argument("--gpt10m-steps", type=int, default=300)
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
        if not args.paths_only:
            sweep_table(wb)
            finetune_table(wb, args.finetune)
            int8_table(wb)
        int8_paths("baby GPT", Workbench(run))
        big = args.gpt10m_run or _train(args.corpus, args.gpt10m_steps, tmp, big=True)
        int8_paths("nanoGPT shakespeare_char GPT", Workbench(big))
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
