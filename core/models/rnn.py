"""Recurrent language models: Embedding -> LSTM or GRU -> Linear, the classic example.

A recurrent model reads tokens one after another, so its logits at position t depend only on
tokens <= t by construction, and it has no fixed context: `context` is the sequence length it
is trained on. `forward_with_state` carries the hidden state across calls, which lets a
generator feed one token at a time without re-reading the prompt.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import Tensor, nn

from core.models.base import LanguageModel, UnitSet
from core.session import ModelConfig

# An LSTM's state is (h, c); a GRU's is h. Each is [n_layer, B, hidden].
State = Tensor | tuple[Tensor, Tensor]

# Matrices per layer: an LSTM has 4 gates' worth, a GRU 3.
_GATES = {"lstm": 4, "gru": 3}

# Below this many tokens per call, a CPU LSTM steps faster without oneDNN (see `step`).
_ONEDNN_MIN_TOKENS = 32


@contextmanager
def _without_onednn() -> Iterator[None]:
    """Turn oneDNN off for the duration (a process-wide switch, put back at once)."""
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.set_flags(_enabled=False, _fp32_precision=None)
    try:
        yield
    finally:
        torch.backends.mkldnn.set_flags(_enabled=enabled, _fp32_precision=None)


class RecurrentLM(LanguageModel):
    """Embedding -> stacked LSTM or GRU -> dropout -> Linear to the vocabulary."""

    def __init__(self, cfg: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        if cfg.arch not in _GATES:
            raise ValueError(f"RecurrentLM needs arch lstm or gru, not {cfg.arch!r}")
        self.arch = cfg.arch
        self.context = cfg.context
        self.vocab_size = vocab_size
        self.n_embd = cfg.n_embd
        self.n_layer = cfg.n_layer
        self.hidden_size = cfg.n_hidden or cfg.n_embd
        rnn_class = nn.LSTM if cfg.arch == "lstm" else nn.GRU
        self.wte = nn.Embedding(vocab_size, cfg.n_embd)
        self.rnn = rnn_class(
            cfg.n_embd, self.hidden_size, num_layers=cfg.n_layer, bias=cfg.bias,
            batch_first=True,
            dropout=cfg.dropout if cfg.n_layer > 1 else 0.0,  # torch drops between layers only
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.lm_head = nn.Linear(self.hidden_size, vocab_size, bias=cfg.bias)
        if cfg.tie_embeddings and self.hidden_size == cfg.n_embd:
            self.lm_head.weight = self.wte.weight

    def prunable_units(self) -> list[UnitSet]:
        """Per layer: hidden units (their rows in every gate of `weight_ih`/`weight_hh`, and
        every column that reads them: in `weight_hh` of the same layer, `weight_ih` of the
        next, or the head)."""
        H = self.hidden_size
        unit = torch.arange(H)
        gate_rows = torch.arange(_GATES[self.arch] * H) % H  # gates are stacked: row g*H + j
        units = []
        for layer in range(self.n_layer):
            reader = f"rnn.weight_ih_l{layer + 1}" if layer + 1 < self.n_layer else "lm_head.weight"
            units.append(UnitSet(H, [(f"rnn.weight_ih_l{layer}", 0, gate_rows),
                                     (f"rnn.weight_hh_l{layer}", 0, gate_rows),
                                     (f"rnn.weight_hh_l{layer}", 1, unit),
                                     (reader, 1, unit)]))
        return units

    def forward(self, idx: Tensor) -> Tensor:
        logits, _ = self.forward_with_state(idx)
        return logits

    def forward_with_state(self, idx: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Logits for `idx`, continuing from `state` (None: a fresh start), and the new state."""
        out, state = self.rnn(self.wte(idx), state)
        return self.lm_head(self.drop(out)), state

    def init_state(self, batch: int = 1) -> State | None:
        """None: torch's recurrent layers start from zeros."""
        return None

    def step(self, idx: Tensor, state: State | None) -> tuple[Tensor, State]:
        """Carry the hidden state on; a recurrent model has no window, so no limit either.

        On CPU, torch routes `nn.LSTM` through oneDNN, which sets up ~1 ms per layer per call
        (torch 2.13): right for a training sequence, 10x too slow for one token at a time, so
        short steps run on ATen's own LSTM kernels instead. (GRUs never go through oneDNN.)
        """
        few = (self.arch == "lstm" and idx.device.type == "cpu"
               and idx.size(1) < _ONEDNN_MIN_TOKENS)
        with _without_onednn() if few else nullcontext():
            return self.forward_with_state(idx, state)

    def flops_per_token(self) -> int:
        """Per layer, the gates' matmuls over input and previous hidden state; then the head."""
        h, gates = self.hidden_size, _GATES[self.arch]
        rnn_macs = sum(gates * h * (n_in + h)
                       for n_in in [self.n_embd] + [h] * (self.n_layer - 1))
        return 2 * (rnn_macs + h * self.vocab_size)
