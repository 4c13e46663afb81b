"""int8 quantization for CPU inference, and the figures that compare a model before and after.

`quantize_int8` is the one place that knows the backend: PyTorch's eager dynamic quantization
(`torch.ao.quantization.quantize_dynamic`). Every `nn.Linear`, `nn.LSTM` and `nn.GRU` gets int8
weights (symmetric, one scale per output row by default) and quantizes its input on the fly at
each call; embeddings, norms and everything else stay fp32. torch 2.13 marks this API
deprecated, but on this project's models it gives 3-4x smaller weights and faster CPU
inference, while torchao's `quantize_` was no faster on CPU eager and cannot handle `nn.LSTM`.
Swapping the backend means changing this module only: `quantize_int8`, and `int8_tensors` /
`set_int8_tensors`, which turn a quantized layer into plain tensors for a file and back.

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

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

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


def _dynamic_types() -> tuple[type[nn.Module], type[nn.Module]]:
    from torch.ao.nn.quantized.dynamic import Linear as QLinear
    from torch.ao.nn.quantized.dynamic.modules.rnn import RNNBase as QRNNBase
    return QLinear, QRNNBase


# --------------------------------------------------------------------------- quantizing

def quantize_int8(model: nn.Module, per_channel: bool = True) -> nn.Module:
    """An int8 copy of `model` for CPU inference; `model` itself is not changed.

    Linear, LSTM and GRU weights become int8 with one scale per output row (`per_channel`,
    more accurate at the same speed) or one per matrix. The copy is on the CPU in eval mode.
    """
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    model = fold_masks(copy_model(unwrap(model))).to("cpu").eval()
    for module in model.modules():
        if isinstance(module, (nn.LSTM, nn.GRU)) and not module.bias:
            _add_zero_biases(module)
    with _quiet():
        return torch.ao.quantization.quantize_dynamic(
            model, {cls: qconfig for cls in QUANTIZABLE}, dtype=torch.qint8, inplace=True)


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
    with _quiet():
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
