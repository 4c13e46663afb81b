"""int8 quantization for CPU inference, and the figures that compare a model before and after.

`quantize_int8` is the one place that knows the backend: PyTorch's eager dynamic quantization
(`torch.ao.quantization.quantize_dynamic`). Every `nn.Linear`, `nn.LSTM` and `nn.GRU` gets int8
weights (symmetric, one scale per output row by default) and quantizes its input on the fly at
each call; embeddings, norms and everything else stay fp32. Swapping the backend means
changing this module only: `quantize_int8`, and `int8_tensors` / `set_int8_tensors`, which
turn a quantized layer into plain tensors for a file and back.

Which kernels (`int8_engine`). The int8 weights are packed for one of torch's engines when a
layer is made or loaded, and that engine runs it. On a CPU with AMX int8 tiles, oneDNN's kernels
are the fast ones for a call of many rows (a context window) and fbgemm's for a call of few (one
token of cached generation): there a Linear holds both packings and each call takes the faster
(`TwoEngineLinear`, `ONEDNN_MIN_MACS`). Elsewhere fbgemm's (torch's `x86` default) run alone.
bench/compress.py --paths-only on nanoGPT's 10.7M shakespeare_char GPT (6x384, context 256,
trained 300 steps), one thread, median of 5 interleaved rounds, 2 shared cores (load 1-3.5):

    path                               file   val loss   window (vs fp32)   per token (vs fp32)
    fp32                               43.0 MB  2.4170    54.0 ms            5.49 ms
    fbgemm, per-row scales             3.74x    +0.0 %    29.7 ms  1.82x     2.71 ms  2.03x
    fbgemm, per-matrix                 3.85x    +0.0 %    29.0 ms  1.86x     2.54 ms  2.16x
    oneDNN+fbgemm, per-row (chosen)    3.74x    +0.0 %    19.8 ms  2.73x     2.58 ms  2.13x
    oneDNN+fbgemm, per-matrix          3.85x    +0.0 %    19.9 ms  2.71x     2.44 ms  2.25x
    torchao quantize_, Int8DynamicActivationInt8WeightConfig (eager)
                                       3.81x    +0.0 %    45.9 ms  1.17x    10.07 ms  0.54x

oneDNN alone (no fbgemm for small calls) ran a window as fast (17.5-17.9 ms vs 50.7 fp32,
quiet machine) but a token at 3.2-3.4 ms (1.3x), on the baby GPT at 0.43x of fp32. And oneDNN
gains only through AMX: limited to AVX-512 VNNI (ONEDNN_MAX_CPU_ISA) it matched fbgemm (23.5
vs 24.8 ms a window), below that it lost (38.9, 52.1 ms). So oneDNN only where the CPU has
`amx_int8`. Per-row scales keep the loss closest to fp32 at about the same speed: the default.
torch 2.13 marks `torch.ao.quantization` deprecated, but its maintained replacement, torchao's
`quantize_` with `Int8DynamicActivationInt8WeightConfig`, is slower on the CPU in eager mode
(it does not reach int8 kernels) and cannot handle `nn.LSTM`: torch.ao stays, 2.3x faster per
window and 3.9x per token than torchao here. The baby GPT (4x128, context 64) gains 1.15x per
window and is slower per token (0.83x: int8's cost per call outweighs its cheaper arithmetic on
small matrices); the tables say so (`core.latency.slower_than`).

Notes on the families:

- Pruned-then-quantized keeps its zeros: the scales are symmetric (zero point 0), so a weight
  that is exactly 0.0 becomes the integer 0. Pruning masks still attached (`weight_orig`,
  `weight_mask`) are folded into the copy first.
- GPT's tied `lm_head`: it is a Linear that shares the token embedding's weight. Quantizing
  swaps it for an int8 layer holding its own copy, so the tie is broken: the embedding stays
  fp32 and the head is int8. Nothing needs the tie at inference; both are stored.
- `nn.LSTM`/`nn.GRU` built with `bias=False` (the session default) are refused by torch's
  converter, so they are given zero biases first: the same function, a few more numbers.
- The quantized model runs on the CPU only, in eval mode (it cannot be trained).
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import save as safetensors_bytes
from torch import Tensor, nn
from torch.nn.utils import prune

from core.checkpoint import unwrap
from core.prune import copy_model, fold_masks

# The float layers that become int8, and the quantized layer types they become.
QUANTIZABLE = (nn.Linear, nn.LSTM, nn.GRU)
# Suffixes of the tensors that describe an int8 weight `name` in `int8_tensors`' output.
SCALE, ZERO_POINT = ".scale", ".zero_point"


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence torch.ao's deprecation warnings (and its warning about creating quantized
    tensors) for the duration; other warnings still show."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r"[\s\S]*quantized tensor creation functions")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao")
        yield


@functools.cache
def int8_engine() -> str:
    """The quantized engine whose kernels run int8 layers fastest on this CPU: oneDNN where the
    CPU has AMX int8 tiles (Linux's `amx_int8` flag), else torch's default (fbgemm)."""
    engines = torch.backends.quantized.supported_engines
    if "onednn" in engines and "amx_int8" in _cpu_flags():
        return "onednn"
    return torch.backends.quantized.engine


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


@contextmanager
def _packing(engine: str | None = None) -> Iterator[None]:
    """Pack int8 weights for `engine` (default `int8_engine()`; the engine in force when a
    layer's weights are packed is the one that runs it), with torch.ao's warnings silenced."""
    before = torch.backends.quantized.engine
    with _quiet():
        torch.backends.quantized.engine = engine or int8_engine()
        try:
            yield
        finally:
            torch.backends.quantized.engine = before


# A Linear call of fewer multiply-adds than this (rows x in x out) runs on fbgemm's kernels
# even where oneDNN's are chosen: oneDNN's fixed cost per call is larger. Measured on one
# thread: 384->1536 at 16 rows fbgemm 62 us, oneDNN 70; at 32 rows 103 and 86; 128->512 at
# 64 rows 51 and 63, at 128 rows 78 and 72. So one token at a time (cached generation) is
# fbgemm's, a context window of the 10.7M GPT oneDNN's.
ONEDNN_MIN_MACS = 12_000_000


@functools.cache
def _two_engine_linear() -> type[nn.Module]:
    """torch.ao's dynamic int8 Linear holding its weights packed twice, for oneDNN and for
    fbgemm, each call run by the kernels that are faster for its size (`ONEDNN_MIN_MACS`).
    The int8 values and scales are the same; only the packing differs (and the memory: two
    int8 copies are still half of one fp32 copy)."""
    q_linear, _ = _dynamic_types()

    class TwoEngineLinear(q_linear):  # type: ignore[misc, valid-type]
        def set_weight_bias(self, w: Tensor, b: Tensor | None) -> None:
            super().set_weight_bias(w, b)  # for the engine in force: oneDNN
            with _packing("fbgemm"):
                self._few_rows = torch.ops.quantized.linear_prepack(w, b)

        def forward(self, x: Tensor) -> Tensor:
            macs = x.numel() // max(x.shape[-1], 1) * self.in_features * self.out_features
            if macs >= ONEDNN_MIN_MACS:
                return super().forward(x)
            y = torch.ops.quantized.linear_dynamic(x, self._few_rows, reduce_range=True)
            return y.to(x.dtype)

        def _get_name(self) -> str:
            return "DynamicQuantizedLinear(oneDNN+fbgemm)"

    return TwoEngineLinear


def _module_mapping(engine: str) -> dict[type[nn.Module], type[nn.Module]]:
    """torch.ao's float -> int8 module types, with `TwoEngineLinear` for Linear when the
    engine is oneDNN and fbgemm is there too."""
    from torch.ao.quantization.quantization_mappings import (
        get_default_dynamic_quant_module_mappings,
    )

    mapping = dict(get_default_dynamic_quant_module_mappings())
    if engine == "onednn" and "fbgemm" in torch.backends.quantized.supported_engines:
        mapping[nn.Linear] = _two_engine_linear()
    return mapping


def _dynamic_types() -> tuple[type[nn.Module], type[nn.Module]]:
    from torch.ao.nn.quantized.dynamic import Linear as QLinear
    from torch.ao.nn.quantized.dynamic.modules.rnn import RNNBase as QRNNBase
    return QLinear, QRNNBase


# --------------------------------------------------------------------------- quantizing

def quantize_int8(model: nn.Module, per_channel: bool = True,
                  engine: str | None = None) -> nn.Module:
    """An int8 copy of `model` for CPU inference; `model` itself is not changed.

    Linear, LSTM and GRU weights become int8 with one scale per output row (`per_channel`,
    more accurate, ~2 % slower) or one per matrix, packed for `engine` (default
    `int8_engine()`; bench/compress.py compares them). The copy is on the CPU in eval mode.
    """
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    model = fold_masks(copy_model(unwrap(model))).to("cpu").eval()
    for module in model.modules():
        if isinstance(module, (nn.LSTM, nn.GRU)) and not module.bias:
            _add_zero_biases(module)
    engine = engine or int8_engine()
    with _packing(engine):
        return torch.ao.quantization.quantize_dynamic(
            model, {cls: qconfig for cls in QUANTIZABLE}, dtype=torch.qint8,
            mapping=_module_mapping(engine), inplace=True)


def _add_zero_biases(rnn: nn.RNNBase) -> None:
    """Zero biases for an LSTM/GRU without them: torch's int8 converter requires biases."""
    for name in list(rnn._flat_weights_names):
        if name.startswith("weight_"):
            weight = getattr(rnn, name)
            bias = nn.Parameter(torch.zeros(weight.shape[0], dtype=weight.dtype,
                                            device=weight.device))
            rnn.register_parameter(name.replace("weight_", "bias_", 1), bias)
    rnn.bias = True


def is_quantized(model: nn.Module) -> bool:
    return bool(quantized_modules(model))


def quantized_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The int8 layers of `model` by module name."""
    q_linear, q_rnn = _dynamic_types()
    return {name: m for name, m in model.named_modules() if isinstance(m, (q_linear, q_rnn))}


# --------------------------------------------------------------------------- plain tensors

def int8_tensors(module: nn.Module) -> dict[str, Tensor]:
    """The weights of one int8 layer as plain tensors, by parameter name.

    Each int8 weight `w` gives `w` (int8 values), `w.scale` (float64: one per output row, or
    a scalar for one per matrix) and `w.zero_point` (int64, same shape); biases are fp32.
    A Linear gives `weight` (and `bias`); an LSTM/GRU its `weight_ih_l0`, `bias_ih_l0`, ...
    """
    q_linear, _ = _dynamic_types()
    if isinstance(module, q_linear):
        weight, bias = module._weight_bias()
        named = {"weight": weight, "bias": bias}
    else:
        wb = module._weight_bias()
        named = {**wb["weight"], **wb["bias"]}
    out: dict[str, Tensor] = {}
    for name, t in named.items():
        if t is None:
            continue
        if t.is_quantized:
            out.update(_unpack_qtensor(name, t))
        else:
            out[name] = t.detach().clone()
    return out


def _unpack_qtensor(name: str, q: Tensor) -> dict[str, Tensor]:
    if q.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        if q.q_per_channel_axis() != 0:
            raise ValueError(f"{name}: int8 scales along axis {q.q_per_channel_axis()}, not 0")
        scale = q.q_per_channel_scales().to(torch.float64)
        zero_point = q.q_per_channel_zero_points().to(torch.int64)
    else:
        scale = torch.tensor(q.q_scale(), dtype=torch.float64)
        zero_point = torch.tensor(q.q_zero_point(), dtype=torch.int64)
    return {name: q.int_repr().clone(), name + SCALE: scale, name + ZERO_POINT: zero_point}


def _pack_qtensor(values: Tensor, scale: Tensor, zero_point: Tensor) -> Tensor:
    if values.dtype != torch.int8:
        raise ValueError(f"int8 weight stored as {values.dtype}")
    if scale.dim() == 0:
        return torch._make_per_tensor_quantized_tensor(values, float(scale), int(zero_point))
    if scale.shape != (values.shape[0],) or zero_point.shape != scale.shape:
        raise ValueError(f"{tuple(scale.shape)} scales for a {tuple(values.shape)} weight")
    return torch._make_per_channel_quantized_tensor(
        values, scale.to(torch.float64), zero_point.to(torch.int64), 0)


def set_int8_tensors(module: nn.Module, tensors: dict[str, Tensor]) -> None:
    """Load the plain tensors `int8_tensors` made into an int8 layer of the same shape.

    The layer gets exactly these int8 values and scales (nothing is re-quantized). Raises
    ValueError naming the first tensor that is missing or does not fit.
    """
    expected = int8_tensors(module)
    for key, want in expected.items():
        got = tensors.get(key)
        if got is None:
            raise ValueError(f"missing {key}")
        if key.endswith((SCALE, ZERO_POINT)):
            continue  # a per-matrix and a per-row scale are both fine; checked when packing
        if tuple(got.shape) != tuple(want.shape):
            raise ValueError(f"{key} has shape {list(got.shape)}, the model needs "
                             f"{list(want.shape)}")
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise ValueError(f"unexpected {extra[0]}")
    with _packing():
        named = {}
        for key in expected:
            if key.endswith((SCALE, ZERO_POINT)):
                continue
            if key + SCALE in expected:
                named[key] = _pack_qtensor(tensors[key], tensors[key + SCALE],
                                           tensors[key + ZERO_POINT])
            else:
                named[key] = tensors[key].to(torch.float32)
        q_linear, _ = _dynamic_types()
        if isinstance(module, q_linear):
            module.set_weight_bias(named["weight"], named.get("bias"))
        else:
            module.set_weight_bias(named)


def weight_tensors(model: nn.Module) -> dict[str, Tensor]:
    """Every weight of `model` as a plain tensor, by state-dict name: what a file holds.

    fp32 tensors are as they are (pruning masks folded in), each int8 layer as
    `int8_tensors` gives it under the layer's name, and a tied tensor once, under its first
    name (the GPT's `transformer.wte.weight`, not `lm_head.weight`).
    """
    model = unwrap(model)
    if prune.is_pruned(model):
        model = fold_masks(copy_model(unwrap(model)))
    qmods = quantized_modules(model)
    out: dict[str, Tensor] = {}
    seen: set[tuple] = set()
    for key, t in model.state_dict().items():
        if any(key.startswith(name + ".") for name in qmods) or not isinstance(t, Tensor):
            continue
        ident = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape),
                 tuple(t.stride()))
        if t.numel() and ident in seen:
            continue
        seen.add(ident)
        out[key] = t.detach().cpu().contiguous()
    for name, module in qmods.items():
        for key, t in int8_tensors(module).items():
            out[f"{name}.{key}"] = t.contiguous()
    return out


# --------------------------------------------------------------------------- figures

def model_size_bytes(model: nn.Module) -> int:
    """Bytes of the model's weights as `core.compressed.save_compressed` writes them
    (`model.safetensors`: int8 weights with their scales, tied tensors once)."""
    return len(safetensors_bytes(weight_tensors(model)))


def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of `torch.save(model.state_dict())`, packed int8 params included: the figure
    other tools quote (a tied tensor counts once there too)."""
    buffer = io.BytesIO()
    with _quiet():
        torch.save(unwrap(model).state_dict(), buffer)
    return buffer.tell()
