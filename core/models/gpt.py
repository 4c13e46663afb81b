"""A decoder-only transformer, as in nanoGPT's `model.py`.

Learned token and position embeddings, `n_layer` pre-norm blocks (causal self-attention, then a
4x MLP), a final LayerNorm, and a linear head that shares its weight with the token embedding
when `tie_embeddings` is set. Module names follow nanoGPT (`transformer.wte`,
`transformer.h.0.attn.c_attn`, `lm_head`, ...) so its checkpoints and parameter counts carry
over; like nanoGPT, the head has no bias whatever `bias` says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.models.base import LanguageModel, UnitSet, make_activation
from core.session import ModelConfig


@dataclass
class KVCache:
    """What `GPT.step` keeps between calls: every layer's keys and values so far.

    The tensors are allocated once for the whole context (`[B, n_head, context, head_size]`
    per layer) and filled up to `length`: on CPU as fast as growing them with `torch.cat` every
    token (bench/generate.py's docstring has the figures), with no allocation per token and
    memory known up front.
    """

    keys: list[Tensor]
    values: list[Tensor]
    tokens: Tensor  # [B, context]: the ids cached, kept to re-prefill when the window slides
    length: int = 0  # positions filled


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

    def forward(self, x: Tensor, kv: tuple[Tensor, Tensor] | None = None,
                start: int = 0) -> Tensor:
        """Attention over `x[B, T, C]`; with `kv`, also over the `start` positions cached there.

        `kv` is one layer's (keys, values) cache, each `[B, n_head, context, head_size]`: the new
        keys and values are written at positions `start..start+T` and the queries attend over
        all of `0..start+T`, so a generator feeds one token at a time without recomputing the
        keys and values of the tokens before it.
        """
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        # [B, T, C] -> [B, n_head, T, head_size]
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        mask, is_causal = None, True
        if kv is not None:
            kv[0].narrow(2, start, T).copy_(k)
            kv[1].narrow(2, start, T).copy_(v)
            k, v = kv[0].narrow(2, 0, start + T), kv[1].narrow(2, 0, start + T)
            if k.dtype != q.dtype:  # a cache made outside autocast, used under it
                k, v = k.to(q.dtype), v.to(q.dtype)
            if start > 0:
                # The new tokens see every cached one and the new ones up to themselves: a
                # causal mask aligned to the bottom right. One new token sees everything.
                is_causal = False
                if T > 1:
                    mask = torch.ones(T, start + T, dtype=torch.bool, device=x.device)
                    mask = mask.tril(start)
        y = self._attend(q, k, v, mask, is_causal)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y))

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None,
                is_causal: bool) -> Tensor:
        p = self.dropout if self.training else 0.0
        if q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # On CPU the bf16 flash-attention backward is ~5x slower than fp32 (torch 2.13,
            # measured on the baby GPT): keep attention in fp32, the matmuls around it in bf16.
            with torch.autocast("cpu", enabled=False):
                y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(),
                                                   attn_mask=mask, dropout_p=p,
                                                   is_causal=is_causal)
            return y.to(q.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p,
                                              is_causal=is_causal)


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

    def forward(self, x: Tensor, kv: tuple[Tensor, Tensor] | None = None,
                start: int = 0) -> Tensor:
        x = x + self.attn(self.ln_1(x), kv, start)
        return x + self.mlp(self.ln_2(x))


class GPT(LanguageModel):
    """Decoder-only transformer language model."""

    arch = "gpt"

    def __init__(self, cfg: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        self.context = cfg.context
        self.vocab_size = vocab_size
        self.n_layer = cfg.n_layer
        self.n_head = cfg.n_head
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

    def init_state(self, batch: int = 1) -> KVCache:
        """An empty KV cache for `batch` sequences, on the model's device and dtype."""
        wte = self.transformer.wte.weight
        shape = (batch, self.n_head, self.context, self.n_embd // self.n_head)

        def empty() -> Tensor:
            return torch.zeros(shape, dtype=wte.dtype, device=wte.device)

        return KVCache(
            keys=[empty() for _ in range(self.n_layer)],
            values=[empty() for _ in range(self.n_layer)],
            tokens=torch.zeros(batch, self.context, dtype=torch.long, device=wte.device),
        )

    def step(self, idx: Tensor, state: KVCache) -> tuple[Tensor, KVCache]:
        """Logits for the new tokens `idx[B, t]` after those in the cache; updates `state`.

        Positions go on from the cache's length. When the new tokens would overflow the
        context, the window slides: the last `max(context // 2, t)` tokens (old and new) are
        prefilled again from position 0 and the rest forgotten. So generation can go on
        forever, re-prefilling half a context once every half a context of tokens, while each
        token still sees at least `context // 2` tokens before it.
        """
        T = idx.size(1)
        if T > self.context:
            raise ValueError(f"step of {T} tokens is longer than the context ({self.context})")
        if state.length + T > self.context:
            seen = torch.cat([state.tokens[:, :state.length], idx], dim=1)
            state.length = 0
            logits = self._extend(seen[:, -max(self.context // 2, T):], state)
            return logits[:, -T:], state
        return self._extend(idx, state), state

    def _extend(self, idx: Tensor, state: KVCache) -> Tensor:
        """Run `idx` through the model at positions `state.length...`, caching keys/values."""
        start, end = state.length, state.length + idx.size(1)
        state.tokens[:, start:end] = idx
        pos = self.transformer.wpe.weight[start:end]  # the rows wpe(arange(start, end)) gives
        x = self.transformer.drop(self.transformer.wte(idx) + pos)
        for block, k, v in zip(self.transformer.h, state.keys, state.values, strict=True):
            x = block(x, (k, v), start)
        state.length = end
        return self.lm_head(self.transformer.ln_f(x))

    def prunable_units(self) -> list[UnitSet]:
        """Per block: attention heads (their q, k, v rows in `c_attn` and columns in
        `attn.c_proj`) and MLP neurons (a row of `c_fc`, the column of `mlp.c_proj` reading it);
        an untied head loses input columns (its rows are tokens)."""
        units = []
        for i, block in enumerate(self.transformer.h):
            p = f"transformer.h.{i}."
            head = torch.arange(self.n_embd) // (self.n_embd // block.attn.n_head)
            units.append(UnitSet(block.attn.n_head, [(p + "attn.c_attn.weight", 0, head.repeat(3)),
                                                     (p + "attn.c_proj.weight", 1, head)]))
            neuron = torch.arange(block.mlp.c_fc.out_features)
            units.append(UnitSet(len(neuron), [(p + "mlp.c_fc.weight", 0, neuron),
                                               (p + "mlp.c_proj.weight", 1, neuron)]))
        if self.lm_head.weight is not self.transformer.wte.weight:
            units.append(UnitSet.rows("lm_head.weight", self.n_embd, dim=1))
        return units

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
