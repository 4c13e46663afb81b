"""torch vs onnxruntime: the latency of one forward over a full window, on the CPU.

    python bench/export.py [--reps 30] [--threads 1]

For the baby GPT (4 layers x 128, context 64, as `llmlab init` writes it) and nanoGPT's
shakespeare_char GPT (6 layers x 384, 6 heads, context 256: 10.7M parameters), both with a
65-token vocabulary and random weights (latency does not depend on what was learned): the model
is exported with `core.export_onnx.write_onnx` (what `llmlab export --format onnx` writes),
then one window `[1, context]` goes through torch and through onnxruntime, alternately, `reps`
times each after a warm-up, with the same number of intra-op threads for both. Printed: the
median of each, their ratio, the largest logit difference, and the export time.
Alternating the two keeps a busy machine's slow moments from landing on one side only. On a
shared machine keep `--threads` at 1 (the default): with more threads than free cores torch's
OpenMP regions wait for descheduled threads (see core/latency.py) and its figure means nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/tokenize.py would shadow the standard library's tokenize module for scripts run from
# this folder: take the folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import statistics
import tempfile
import time

MODELS = {  # name: (n_layer, n_head, n_embd, context)
    "baby GPT 4x128 ctx 64": (4, 4, 128, 64),
    "GPT 6x384 ctx 256 (10.7M)": (6, 6, 384, 256),
}
VOCAB = 65  # tinyshakespeare's characters
WARMUP = 5


def build(n_layer: int, n_head: int, n_embd: int, context: int):
    import torch

    from core.models import build_model
    from core.session import ModelConfig

    torch.manual_seed(0)
    cfg = ModelConfig(arch="gpt", n_layer=n_layer, n_head=n_head, n_embd=n_embd,
                      context=context, dropout=0.0)
    return build_model(cfg, VOCAB).eval()


def bench(name: str, shape: tuple[int, int, int, int], reps: int, threads: int) -> None:
    import torch

    from core.export_onnx import onnx_logits, onnx_session, write_onnx

    model = build(*shape)
    context = shape[3]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        start = time.perf_counter()
        write_onnx(path, model)
        export_s = time.perf_counter() - start
        session = onnx_session(path, threads=threads)
        ids = torch.randint(VOCAB, (1, context), generator=torch.Generator().manual_seed(0))
        torch_ms, ort_ms = [], []
        with torch.inference_mode():
            reference = model(ids).numpy()
            diff = float(abs(onnx_logits(session, ids) - reference).max())
            for i in range(WARMUP + reps):
                t0 = time.perf_counter()
                model(ids)
                t1 = time.perf_counter()
                onnx_logits(session, ids)
                t2 = time.perf_counter()
                if i >= WARMUP:
                    torch_ms.append(1000 * (t1 - t0))
                    ort_ms.append(1000 * (t2 - t1))
    t, o = statistics.median(torch_ms), statistics.median(ort_ms)
    params = sum(p.numel() for p in model.parameters())
    print(f"{name:<27} {params / 1e6:6.2f}M  torch {t:8.2f} ms  onnxruntime {o:8.2f} ms  "
          f"torch/ort {t / o:5.2f}x  max |diff| {diff:.1e}  export {export_s:4.1f} s",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30, help="timed forwards of each")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads for torch and onnxruntime alike")
    args = parser.parse_args()
    import onnxruntime
    import torch

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
          f"{args.threads} thread(s), one window [1, context], median of {args.reps}")
    for name, shape in MODELS.items():
        bench(name, shape, args.reps, args.threads)


if __name__ == "__main__":
    main()
