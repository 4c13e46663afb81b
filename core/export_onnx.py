"""ONNX export: `model.onnx` that onnxruntime runs, `input_ids[batch, seq] -> logits[batch,
seq, vocab]`, with both axes dynamic.

Two exporters, each where it keeps both axes dynamic (torch 2.13):

- `gpt` and `mlp`: torch's own exporter (`torch.onnx.export(dynamo=True)`, through
  torch.export and onnxscript), the maintained one. The sequence axis of a `gpt` is bounded by
  its context (its position table); an `mlp` takes any length.
- `lstm` and `gru`: torch.export fixes the time axis of `nn.LSTM`/`nn.GRU` to the example's
  length (pytorch/pytorch#115092, open), so the exported model would claim one length.
  They go through the TorchScript exporter (`dynamo=False`), which maps them to ONNX's own
  LSTM/GRU operators with a free time axis; torch marks it deprecated, and says so once.

`onnx_logits` runs a file with onnxruntime, for the tests and bench/export.py.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

ONNX_FILE = "model.onnx"
INPUT, OUTPUT = "input_ids", "logits"
RECURRENT = ("lstm", "gru")


def write_onnx(path: Path, model: nn.Module) -> None:
    """Export `model` (an llmlab LanguageModel on the CPU, any family) to `path`."""
    model = model.eval()
    context = model.context
    example = torch.zeros(2, min(context, 8), dtype=torch.long)
    if model.arch in RECURRENT:
        with warnings.catch_warnings():  # its deprecation and batch-size notices, not ours
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(path), dynamo=False,
                              input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {0: "batch", 1: "seq"},
                                            OUTPUT: {0: "batch", 1: "seq"}})
        return
    axes = {0: torch.export.Dim("batch", min=1)}
    if model.arch != "gpt":
        axes[1] = torch.export.Dim("seq", min=1)
    elif context > 1:  # (a gpt of context 1 takes one length only)
        axes[1] = torch.export.Dim("seq", min=1, max=context)
    with warnings.catch_warnings():  # torch.export's notices about its own internals
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, input_names=[INPUT],
                                    output_names=[OUTPUT], dynamic_shapes=(axes,),
                                    verbose=False)
    program.save(str(path))


def onnx_session(path: Path, threads: int = 0):
    """An onnxruntime session on the CPU (`threads` intra-op threads; 0 = its default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_logits(session, ids: torch.Tensor | np.ndarray) -> np.ndarray:
    """Logits `[B, T, V]` for int64 token ids `[B, T]`."""
    ids = ids.numpy() if isinstance(ids, torch.Tensor) else ids
    return session.run([OUTPUT], {INPUT: ids.astype(np.int64)})[0]
