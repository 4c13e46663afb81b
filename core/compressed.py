"""Compressed models on disk: a pruned and/or int8 model in a folder of its own.

    model.safetensors   the weights (safetensors: reading it cannot run code)
    compressed.json     what was done and how to rebuild it: the architecture (the session's
                        `[model]` table), the vocabulary size, `quantize`, the caller's record
                        (method, sparsity, source run and step, sizes...) and measured figures

Pruned weights are stored dense with their zeros folded in (no `weight_orig`/`weight_mask`).
An int8 layer's weight `w` is stored as `w` (int8), `w.scale` (float64, one per output row or a
scalar) and `w.zero_point` (int64), its bias as fp32; everything else (embeddings, norms) is
fp32. A tied tensor is stored once. `load_compressed` rebuilds the architecture, quantizes it
the same way and then puts the stored int8 values and scales in place, so the loaded model
computes exactly what the saved one did.

The folder is written like a checkpoint (`core.checkpoint`): files fsynced in a hidden
`.tmp-*` folder next to it, then renamed into place, so a kill never leaves a half one.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from core.checkpoint import (
    atomic_folder,
    describe_names,
    names_mismatch,
    one_line,
    unwrap,
)
from core.errors import CheckpointError, SessionError
from core.fileio import fsync_file, jsonable, read_small_text
from core.quantize import (
    SCALE,
    ZERO_POINT,
    quantize_int8,
    quantized_modules,
    set_int8_tensors,
    weight_tensors,
)
from core.runs import COMPRESSED_META
from core.session import ModelConfig, session_from_dict

WEIGHTS_FILE = "model.safetensors"
META_FILE = COMPRESSED_META
FILES = (WEIGHTS_FILE, META_FILE)
FORMAT = 1
# Keys of compressed.json that save_compressed computes; a caller's meta may not set them.
RESERVED = ("format", "arch", "vocab_size", "quantize", "int8_layers", "stored")


# --------------------------------------------------------------------------- saving

def save_compressed(folder: str | os.PathLike, model: nn.Module, *, arch_cfg: ModelConfig,
                    vocab_size: int, meta: dict[str, Any]) -> Path:
    """Write `model` (pruned, int8, or both) to `folder` atomically and return the folder.

    `meta` is the caller's record of what was done, stored as it is in compressed.json:
    e.g. `method`, `sparsity`, `source_run`, `source_step`, `layer_sparsity`, `sizes`. The
    keys in `RESERVED` are computed here (`quantize` is "int8" or "none" from the model
    itself; `stored` holds the file size, parameter count and measured zero fractions).

    An existing compressed-model folder is replaced; any other existing non-empty folder is
    refused, so a wrong path never deletes a run. Disk problems raise CheckpointError.
    """
    folder = Path(folder)
    model = unwrap(model)
    clash = sorted(set(meta) & set(RESERVED))
    if clash:
        raise ValueError(f"save_compressed: meta may not set {', '.join(clash)} "
                         "(computed from the model)")
    tensors = weight_tensors(model)  # pruning masks folded, tied tensors once, int8 unpacked
    int8_layers = sorted(quantized_modules(model))
    mismatch = _arch_mismatch(arch_cfg, vocab_size, tensors, int8_layers)
    if mismatch:
        raise ValueError(f"save_compressed: the model does not match arch_cfg ({mismatch})")
    info: dict[str, Any] = {
        **meta,
        "format": FORMAT,
        "arch": asdict(arch_cfg),
        "vocab_size": int(vocab_size),
        "quantize": "int8" if int8_layers else "none",
        "int8_layers": int8_layers,
        "stored": _stored_figures(tensors),
    }
    if folder.exists() and not (folder / META_FILE).is_file() and _non_empty(folder):
        raise CheckpointError(f"cannot save compressed model {folder}: the folder exists and "
                              f"is not a compressed model (no {META_FILE}); not replacing it")
    try:
        with atomic_folder(folder) as tmp:
            save_file(tensors, str(tmp / WEIGHTS_FILE))  # exactly model_size_bytes(model) bytes
            fsync_file(tmp / WEIGHTS_FILE)
            info["stored"]["file_bytes"] = (tmp / WEIGHTS_FILE).stat().st_size
            with open(tmp / META_FILE, "w", encoding="utf-8") as f:
                json.dump(info, f, indent=2, default=jsonable)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
    except OSError as e:
        raise CheckpointError(f"cannot save compressed model {folder}: {one_line(e)}") from None
    return folder


def _arch_mismatch(cfg: ModelConfig, vocab_size: int, tensors: dict[str, Tensor],
                   int8_layers: list[str]) -> str | None:
    """Why `tensors` would not load into `build_model(cfg, vocab_size)`, or None.

    Checked at save time (names and shapes only, on the meta device: no memory, no init), so
    a model saved with the wrong settings fails now rather than when someone loads it.
    """
    from core.models import build_model

    with torch.device("meta"):
        ref = build_model(cfg, vocab_size).state_dict(keep_vars=True)
    groups: dict[int, list[str]] = {}  # a tied parameter is one object under several names
    for key, t in ref.items():
        groups.setdefault(id(t), []).append(key)
    stored = [k for k in tensors if not k.endswith((SCALE, ZERO_POINT))]
    unexpected = [k for k in stored if k not in ref and not _added_rnn_bias(k, int8_layers)]
    missing = []
    for names in groups.values():
        present = [k for k in names if k in tensors]
        if not present:
            missing.append(names[0])
        # A tie in arch_cfg that the model broke (an int8 head may: it holds its own copy).
        unexpected += [k for k in present if tensors[k].is_floating_point()][1:]
    if missing or unexpected:
        return "; ".join(p for p in (describe_names("missing", missing),
                                     describe_names("unexpected", unexpected)) if p)
    for key in stored:
        if key in ref and tuple(tensors[key].shape) != tuple(ref[key].shape):
            return (f"{key} has shape {list(tensors[key].shape)}, arch_cfg gives "
                    f"{list(ref[key].shape)}")
    return None


def _added_rnn_bias(key: str, int8_layers: list[str]) -> bool:
    """The zero biases quantize_int8 gives an LSTM/GRU built without biases."""
    layer, _, name = key.rpartition(".")
    return layer in int8_layers and name.startswith(("bias_ih_l", "bias_hh_l"))


def _non_empty(folder: Path) -> bool:
    try:
        return folder.is_file() or any(folder.iterdir())
    except OSError:
        return True


def _stored_figures(tensors: dict[str, Tensor]) -> dict[str, Any]:
    """Parameter count and the measured fraction of exact zeros in each weight matrix.

    Scales and zero points are not parameters; a matrix is any tensor with 2 or more
    dimensions (Linear, LSTM/GRU and embedding weights, int8 or fp32).
    """
    params = zeros = numel = 0
    layers = {}
    for key, t in tensors.items():
        if key.endswith((SCALE, ZERO_POINT)):
            continue
        params += t.numel()
        if t.dim() >= 2:
            z = int((t == 0).sum())
            zeros += z
            numel += t.numel()
            layers[key] = round(z / max(t.numel(), 1), 6)
    return {"params": params, "zero_fraction": round(zeros / max(numel, 1), 6),
            "layer_zero_fraction": layers}


# --------------------------------------------------------------------------- loading

def load_compressed(folder: str | os.PathLike,
                    device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The model saved in `folder`, in eval mode, and its compressed.json as a dict.

    Everything is read and checked first; a missing or damaged file, or weights that do not
    fit the recorded architecture, raise CheckpointError with one line naming the folder and
    the cause. int8 models run on the CPU only.
    """
    folder = Path(folder)

    def fail(cause: str) -> CheckpointError:
        return CheckpointError(f"compressed model {folder}: {cause}")

    if not folder.is_dir():
        raise fail("no such folder")
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise fail(f"missing {', '.join(missing)}")
    info = _read_info(folder / META_FILE, fail)
    cfg = _arch(info, fail)
    vocab_size = info.get("vocab_size")
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 1:
        raise fail(f"{META_FILE}: vocab_size must be a positive integer (got {vocab_size!r})")
    quantize = info.get("quantize")
    if quantize not in ("none", "int8"):
        raise fail(f"{META_FILE}: quantize must be none or int8 (got {quantize!r})")
    if quantize == "int8" and torch.device(device).type != "cpu":
        raise fail(f"int8 models run on the CPU only (asked for {device})")
    try:
        tensors = load_file(str(folder / WEIGHTS_FILE))
    except Exception as e:  # truncated, not safetensors, unreadable
        raise fail(f"{WEIGHTS_FILE} is damaged ({one_line(e)})") from None

    # Names and shapes against the claimed architecture, on the meta device, before anything
    # is allocated: a compressed.json claiming n_layer=1000 beside a small file stops here.
    int8_layers = info.get("int8_layers")
    try:
        mismatch = _arch_mismatch(cfg, vocab_size, tensors,
                                  int8_layers if isinstance(int8_layers, list) else [])
    except ValueError as e:
        raise fail(f"{META_FILE}: cannot build the model ({one_line(e)})") from None
    if mismatch:
        raise fail(f"weights do not fit this model as {META_FILE} describes it ({mismatch}); "
                   "refused before building it")

    from core.models import build_model

    try:
        model = build_model(cfg, vocab_size)
    except ValueError as e:
        raise fail(f"{META_FILE}: cannot build the model ({one_line(e)})") from None
    if quantize == "int8":
        model = quantize_int8(model)
    problem = _fill(model, tensors)
    if problem:
        raise fail(f"weights do not fit this model ({problem})")
    return model.to(device).eval(), info


def _read_info(path: Path, fail) -> dict[str, Any]:
    try:
        info = json.loads(read_small_text(path))
    except (OSError, ValueError) as e:  # ValueError covers bad JSON and bad UTF-8
        raise fail(f"{META_FILE} is not valid JSON ({one_line(e)})") from None
    if not isinstance(info, dict):
        raise fail(f"{META_FILE} is not a JSON object")
    version = info.get("format")
    if version != FORMAT:
        newer = isinstance(version, int) and version > FORMAT
        raise fail(f"{META_FILE}: format {version!r} is "
                   + ("newer than this llmlab reads" if newer else f"not {FORMAT}"))
    return info


def _arch(info: dict[str, Any], fail) -> ModelConfig:
    """The ModelConfig recorded in compressed.json, validated like a session's [model]."""
    arch = info.get("arch")
    if not isinstance(arch, dict):
        raise fail(f"{META_FILE}: arch must be a table of model settings (got {arch!r})")
    try:
        return session_from_dict({"model": arch}).model
    except SessionError as e:
        raise fail(f"{META_FILE}: arch is not valid ({e})") from None


def _fill(model: nn.Module, tensors: dict[str, Tensor]) -> str | None:
    """Put `tensors` into `model`; what does not fit (one phrase), or None.

    The int8 layers take their tensors first; every other tensor of the model's state must
    be in the file exactly once per tied group, with its shape. `model` is a fresh one that
    the caller drops when this fails, so a half-filled model is never seen.
    """
    qmods = quantized_modules(model)
    left = dict(tensors)
    int8_parts = {}
    for name in qmods:
        prefix = name + "."
        int8_parts[name] = {k[len(prefix):]: left.pop(k) for k in list(left)
                            if k.startswith(prefix)}
    state = {k: v for k, v in model.state_dict().items()
             if isinstance(v, Tensor) and not any(k.startswith(n + ".") for n in qmods)}
    mismatch = names_mismatch(left, state)
    if mismatch:
        return mismatch
    for key, t in left.items():
        want = state[key]
        if t.shape != want.shape:
            return f"{key} has shape {list(t.shape)} in the file, {list(want.shape)} in the model"
        if t.is_floating_point() != want.is_floating_point():
            return f"{key} is {t.dtype} in the file, {want.dtype} in the model"
    for name, module in qmods.items():
        try:
            set_int8_tensors(module, int8_parts[name])
        except (ValueError, RuntimeError) as e:
            return f"{name}: {one_line(e)}"
    with torch.no_grad():
        for key, t in left.items():
            state[key].copy_(t)
    return None
