"""A fixed-window neural language model: Bengio et al.'s "three-layer network".

Each next token is predicted from the embeddings of the `context` tokens before it, concatenated
into one vector of `context * n_embd` numbers and passed through `n_layer` hidden layers. The
first layer's width grows with the window, so this family suits the small contexts it was made
for (a few to a few dozen tokens).

To give logits at every position like the other families, position t sees the window of the
last `context` tokens ending at t; the positions before the start of the sequence are filled
with a learned padding vector. All windows are cut at once with `unfold`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from core.models.base import LanguageModel, make_activation
from core.session import ModelConfig


class MLPLM(LanguageModel):
    """Window of embeddings -> hidden layers -> logits."""

    arch = "mlp"

    def __init__(self, cfg: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        self.context = cfg.context
        self.vocab_size = vocab_size
        self.n_embd = cfg.n_embd
        hidden = cfg.n_hidden or 4 * cfg.n_embd
        self.wte = nn.Embedding(vocab_size, cfg.n_embd)
        self.pad = nn.Parameter(torch.zeros(cfg.n_embd))  # stands in for tokens before the start
        widths = [cfg.context * cfg.n_embd] + [hidden] * cfg.n_layer
        layers: list[nn.Module] = []
        for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(n_in, n_out, bias=cfg.bias), make_activation(cfg.activation),
                       nn.Dropout(cfg.dropout)]
        self.hidden = nn.Sequential(*layers)
        self.lm_head = nn.Linear(hidden, vocab_size, bias=cfg.bias)
        if cfg.tie_embeddings and hidden == cfg.n_embd:
            self.lm_head.weight = self.wte.weight

    def windows(self, idx: Tensor) -> Tensor:
        """`[B, T, context * n_embd]`: at position t, the embeddings of tokens t-context+1..t."""
        B, T = idx.shape
        x = self.wte(idx)
        pad = self.pad.expand(B, self.context - 1, self.n_embd)
        x = torch.cat([pad, x], dim=1)  # [B, context - 1 + T, C]
        x = x.unfold(1, self.context, 1)  # [B, T, C, context]: window t ends at token t
        return x.transpose(2, 3).reshape(B, T, self.context * self.n_embd)

    def forward(self, idx: Tensor) -> Tensor:
        return self.lm_head(self.hidden(self.windows(idx)))

    def flops_per_token(self) -> int:
        """The hidden layers' and the output layer's matmuls."""
        macs = sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Linear))
        return 2 * macs
