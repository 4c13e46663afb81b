"""A decoder-only transformer, as in nanoGPT's `model.py`.

Learned token and position embeddings, `n_layer` pre-norm blocks (causal self-attention, then a
4x MLP), a final LayerNorm, and a linear head that shares its weight with the token embedding
when `tie_embeddings` is set. Module names follow nanoGPT (`transformer.wte`,
`transformer.h.0.attn.c_attn`, `lm_head`, ...) so its checkpoints and parameter counts carry
over; like nanoGPT, the head has no bias whatever `bias` says.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.models.base import LanguageModel, make_activation
from core.session import ModelConfig


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which a token only sees itself and earlier tokens."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.n_embd % cfg.n_head != 0:
            raise ValueError(f"n_head ({cfg.n_head}) must divide n_embd ({cfg.n_embd})")
        self.n_head = cfg.n_head
        self.dropout = cfg.dropout
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)  # q, k, v at once
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        # [B, T, C] -> [B, n_head, T, head_size]
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """The position-wise feed-forward network: widen 4x, activate, project back."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.act = make_activation(cfg.activation)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class Block(nn.Module):
    """One transformer block; pre-norm, so the residual stream itself is never normalised."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(LanguageModel):
    """Decoder-only transformer language model."""

    arch = "gpt"

    def __init__(self, cfg: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        self.context = cfg.context
        self.vocab_size = vocab_size
        self.n_layer = cfg.n_layer
        self.n_embd = cfg.n_embd
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, cfg.n_embd),
            wpe=nn.Embedding(cfg.context, cfg.n_embd),
            drop=nn.Dropout(cfg.dropout),
            h=nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer)),
            ln_f=nn.LayerNorm(cfg.n_embd, bias=cfg.bias),
        ))
        self.lm_head = nn.Linear(cfg.n_embd, vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.transformer.wte.weight
        self.apply(_init_weights)
        # GPT-2: scale the projections into the residual stream by 1/sqrt(number of them), so
        # the stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    def forward(self, idx: Tensor) -> Tensor:
        T = idx.size(1)
        if T > self.context:
            raise ValueError(f"sequence of {T} tokens is longer than the context ({self.context})")
        pos = torch.arange(T, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))

    def num_position_params(self) -> int:
        return self.transformer.wpe.weight.numel()

    def flops_per_token(self) -> int:
        """Matmuls (2 * 12 * n_embd**2 per layer, plus the head) and attention scores.

        Attention counts q.k and the weighted sum of v over the full context, 2 * 2 * context *
        n_embd per layer, ignoring the causal mask, as nanoGPT's MFU estimate and Kaplan et al.
        do: its forward part is the 2N + 4 * n_layer * n_embd * context of `6N + 12LHQT`.
        """
        d, L = self.n_embd, self.n_layer
        matmul_macs = L * 12 * d * d + d * self.vocab_size
        attention_macs = L * 2 * self.context * d
        return 2 * (matmul_macs + attention_macs)


def _init_weights(module: nn.Module) -> None:
    """nanoGPT's initialisation: N(0, 0.02) weights, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
