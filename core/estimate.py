"""What a model will cost, from its config alone: parameters, FLOPs, memory, steps per epoch.

Pure arithmetic (no torch), so the TUI can show a live summary while the user edits the form.
`param_count` and `flops_per_token` follow the model code in `core.models` term by term and
equal `build_model(cfg, vocab).num_params()` / `.flops_per_token()` exactly (tests check it).

The memory figure is an estimate, documented in `memory_estimate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import LlmlabError
from core.session import ModelConfig, OptimConfig, Session, TrainConfig

_GATES = {"lstm": 4, "gru": 3}  # weight matrices per recurrent layer
_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
# Optimizer state tensors kept per parameter (fp32): AdamW/Adam m and v, SGD momentum,
# Adadelta's square_avg and acc_delta.
_OPTIMIZER_STATES = {"adamw": 2, "adam": 2, "sgd": 1, "adadelta": 2}


def _hidden(cfg: ModelConfig) -> int:
    if cfg.arch == "mlp":
        return cfg.n_hidden or 4 * cfg.n_embd
    return cfg.n_hidden or cfg.n_embd


def _linear(n_in: int, n_out: int, bias: bool) -> int:
    return n_in * n_out + (n_out if bias else 0)


def param_count(cfg: ModelConfig, vocab_size: int) -> int:
    """Trainable parameters, a tied weight counted once (as `LanguageModel.num_params`)."""
    d, L, V, T, bias = cfg.n_embd, cfg.n_layer, vocab_size, cfg.context, cfg.bias
    if cfg.arch == "gpt":
        norm = d * (2 if bias else 1)  # LayerNorm weight (+ bias)
        block = (norm + _linear(d, 3 * d, bias) + _linear(d, d, bias)  # ln_1, attention
                 + norm + _linear(d, 4 * d, bias) + _linear(4 * d, d, bias))  # ln_2, MLP
        head = 0 if cfg.tie_embeddings else V * d  # lm_head never has a bias
        return V * d + T * d + L * block + norm + head
    if cfg.arch == "mlp":
        h = _hidden(cfg)
        widths = [T * d] + [h] * L
        hidden = sum(_linear(a, b, bias) for a, b in zip(widths[:-1], widths[1:], strict=True))
        tied = cfg.tie_embeddings and h == d
        head = (0 if tied else h * V) + (V if bias else 0)
        return V * d + d + hidden + head  # embedding, padding vector, layers, head
    if cfg.arch in _GATES:
        h, g = _hidden(cfg), _GATES[cfg.arch]
        rnn = sum(g * h * (n_in + h) + (2 * g * h if bias else 0)
                  for n_in in [d] + [h] * (L - 1))
        tied = cfg.tie_embeddings and h == d
        head = (0 if tied else h * V) + (V if bias else 0)
        return V * d + rnn + head
    raise ValueError(f"unknown model.arch {cfg.arch!r}")


def describe_model(cfg: ModelConfig) -> str:
    """The fields that size a model, as a user would set them: `gpt n_layer=4 n_embd=128`."""
    sized = f"n_layer={cfg.n_layer} n_embd={cfg.n_embd}"
    if cfg.arch in ("lstm", "gru", "mlp") and cfg.n_hidden:
        sized += f" n_hidden={cfg.n_hidden}"
    return f"{cfg.arch} {sized} context={cfg.context}"


def flops_per_token(cfg: ModelConfig, vocab_size: int) -> int:
    """Forward FLOPs per token, 2 per multiply-accumulate of the matmuls (as the models
    count them: elementwise work and embedding lookups are left out)."""
    d, L, V, T = cfg.n_embd, cfg.n_layer, vocab_size, cfg.context
    if cfg.arch == "gpt":
        return 2 * (L * 12 * d * d + d * V + L * 2 * T * d)
    if cfg.arch == "mlp":
        h = _hidden(cfg)
        return 2 * (T * d * h + (L - 1) * h * h + h * V)
    if cfg.arch in _GATES:
        h, g = _hidden(cfg), _GATES[cfg.arch]
        return 2 * (sum(g * h * (n_in + h) for n_in in [d] + [h] * (L - 1)) + h * V)
    raise ValueError(f"unknown model.arch {cfg.arch!r}")


def activation_bytes(cfg: ModelConfig, vocab_size: int, batch_size: int,
                     precision: str = "fp32") -> int:
    """Activations kept for the backward pass of one micro-batch (an estimate).

    gpt: Korthikanti et al. (2022), "Reducing Activation Recomputation", per layer and token
    34*d + 5*n_head*T values at 2 bytes each (scaled here to the precision's width), with
    attention scores materialised (SDPA's flash kernels keep fewer; this is an upper bound).
    mlp: the window of embeddings plus each hidden layer's input and output.
    lstm/gru: per layer and token, the gates plus the hidden (and cell) state.
    All archs add the logits three times (the logits, their fp32 copy for the loss, and the
    loss gradient), which dominates for small models with big vocabularies.
    """
    d, L, V, T = cfg.n_embd, cfg.n_layer, vocab_size, cfg.context
    width = _BYTES.get(precision, 4)
    tokens = batch_size * T
    if cfg.arch == "gpt":
        per_token = L * (34 * d + 5 * cfg.n_head * T) * width // 2 + 2 * d * width
    elif cfg.arch == "mlp":
        h = _hidden(cfg)
        per_token = (T * d + 2 * L * h) * width
    elif cfg.arch in _GATES:
        h, g = _hidden(cfg), _GATES[cfg.arch]
        per_token = (d + L * (g + 3) * h) * width
    else:
        raise ValueError(f"unknown model.arch {cfg.arch!r}")
    logits = 3 * V * 4
    return tokens * (per_token + logits)


@dataclass
class MemoryEstimate:
    weights: int
    grads: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.grads + self.optimizer + self.activations


def memory_estimate(cfg: ModelConfig, vocab_size: int, optim: OptimConfig,
                    train: TrainConfig) -> MemoryEstimate:
    """Bytes of memory for training: fp32 weights and gradients (autocast keeps the master
    weights in fp32), the optimizer's fp32 state tensors (AdamW: 2 per parameter; SGD: 1,
    the momentum buffer, also kept when momentum is 0 for simplicity) and the activations of
    one micro-batch (`activation_bytes`). Framework overhead (the CUDA context, allocator
    slack, the torch library itself) is left out: add a few hundred MB on a GPU."""
    n = param_count(cfg, vocab_size)
    states = _OPTIMIZER_STATES.get(optim.name, 2)
    return MemoryEstimate(
        weights=4 * n, grads=4 * n, optimizer=4 * n * states,
        activations=activation_bytes(cfg, vocab_size, train.batch_size, train.precision))


# A vocabulary for the estimate before the corpus is read: the cap when one is set, else 256
# (every char tokenizer of a byte-sized alphabet; word/jieba vocabularies are larger, so a
# model refused with 256 is refused with the real one: `check` never refuses a model that fits).
GUESSED_VOCAB = 256


def guessed_vocab(session: Session) -> int:
    """The vocabulary `check` estimates with, before any corpus is read (see GUESSED_VOCAB)."""
    return session.data.vocab_size or GUESSED_VOCAB


def _meminfo_available(meminfo: Path) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_headroom(cgroup_fs: Path) -> int | None:
    """What the process's memory cgroup still allows (limit - usage), v2 or v1; None if no limit."""
    v1 = "memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"
    for limit_name, usage_name in (("memory.max", "memory.current"), v1):
        try:
            limit = (cgroup_fs / limit_name).read_text().strip()
            if limit == "max" or int(limit) >= 1 << 60:  # v1 says "no limit" with a huge number
                continue
            usage = int((cgroup_fs / usage_name).read_text().strip())
        except (OSError, ValueError):
            continue
        return max(0, int(limit) - usage)
    return None


def _address_space_headroom() -> int | None:
    """What `ulimit -v` (RLIMIT_AS) still allows this process, or None without a limit."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit == resource.RLIM_INFINITY:
            return None
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return max(0, limit - int(line.split()[1]) * 1024)
        return limit
    except (ImportError, OSError, ValueError, IndexError):
        return None


def host_memory_available(meminfo: Path = Path("/proc/meminfo"),
                          cgroup_fs: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Bytes a new process may still use on this machine: MemAvailable, or the memory cgroup's
    headroom (a container or a systemd slice) or the address-space limit's (`ulimit -v`) when
    lower. None where none is known. Torch-free, so `check` and the TUI can ask."""
    known = [n for n in (_meminfo_available(meminfo), _cgroup_headroom(cgroup_fs),
                         _address_space_headroom()) if n is not None]
    return min(known) if known else None


def likely_device_type(device: str) -> str:
    """The device type a `train.device` setting will train on, torch-free where it can be:
    `auto` looks for an NVIDIA driver before asking torch about CUDA."""
    if device != "auto":
        return device.split(":")[0]
    if not Path("/proc/driver/nvidia/gpus").is_dir():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def memory_available(device_type: str) -> int | None:
    """Bytes free where training will run: the GPU's free memory on cuda (asks torch, so only
    in the engine), the host's otherwise (a CPU or an MPS run shares the machine's memory)."""
    if device_type == "cuda":
        import torch

        if not torch.cuda.is_available():
            return None  # (placing the run says so)
        return int(torch.cuda.mem_get_info()[0])
    return host_memory_available()


def session_fit_problem(session: Session, vocab_size: int | None = None) -> str | None:
    """`check_session_fits`'s line for a screen that must not import torch: the host's memory
    is checked where the run will be on the CPU; a GPU's is left to the engine, which checks
    it before the run begins."""
    if session.train.device != "cpu" and (session.train.device != "auto"
                                          or Path("/proc/driver/nvidia/gpus").is_dir()):
        return None
    try:
        check_session_fits(session, vocab_size, "cpu")
    except LlmlabError as e:
        return str(e)
    except (ValueError, ZeroDivisionError):
        return None  # a form still being edited: its own problems say so
    return None


def check_session_fits(session: Session, vocab_size: int | None = None,
                       device_type: str | None = None) -> None:
    """`check_fits` for a session about to train, with the tokenizer's vocabulary when known."""
    vocab = guessed_vocab(session) if vocab_size is None else vocab_size
    mem = memory_estimate(session.model, vocab, session.optim, session.train)
    device_type = device_type or likely_device_type(session.train.device)
    where = " on the GPU" if device_type == "cuda" else ""
    check_fits(mem, memory_available(device_type), where)


def check_fits(mem: MemoryEstimate, available: int | None, where: str = "") -> None:
    """Refuse a model whose estimated training memory exceeds what is available, in one line:
    the estimate, its parts, and what is free. Unknown availability refuses nothing."""
    if available is None or mem.total <= available:
        return
    b = human_bytes
    raise LlmlabError(
        f"model: needs ~{b(mem.total)} to train (params+grads {b(mem.weights + mem.grads)}, "
        f"optimizer {b(mem.optimizer)}, activations {b(mem.activations)}), "
        f"{b(available)} available{where}; use a smaller model, batch_size or context")


def global_batch(train: TrainConfig) -> int:
    """Sequences per optimizer step over every process (batch_size is per process)."""
    return train.batch_size * train.grad_accum * train.nproc


def tokens_per_step(cfg: ModelConfig, train: TrainConfig) -> int:
    return global_batch(train) * cfg.context


def steps_per_epoch(train_tokens: int, cfg: ModelConfig, train: TrainConfig) -> float:
    """Optimizer steps to see as many tokens as the train split holds (one "epoch" of random
    windows: train tokens / (batch * context * grad_accum))."""
    return train_tokens / max(1, tokens_per_step(cfg, train))


def human_count(n: float) -> str:
    """1234 -> '1.23k', 5_300_000 -> '5.30M' (3 significant figures)."""
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.3g}" if isinstance(n, float) and n != int(n) else str(int(n))


def human_bytes(n: float) -> str:
    for unit, size in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"
