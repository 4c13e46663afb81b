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

from core.models.base import LanguageModel, UnitSet, make_activation
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

    def windows(self, idx: Tensor, last: int | None = None) -> Tensor:
        """`[B, T, context * n_embd]`: at position t, the embeddings of tokens t-context+1..t.

        With `last`, only the windows of the last `last` positions.
        """
        B = idx.size(0)
        x = self.wte(idx)
        pad = self.pad.expand(B, self.context - 1, self.n_embd)
        x = torch.cat([pad, x], dim=1)  # [B, context - 1 + T, C]
        x = x.unfold(1, self.context, 1)  # [B, T, C, context]: window t ends at token t
        if last is not None:
            x = x[:, -last:]
        return x.transpose(2, 3).reshape(B, x.size(1), self.context * self.n_embd)

    def prunable_units(self) -> list[UnitSet]:
        """Per hidden layer: its neurons (a row, and the next layer's column)."""
        names = [f"hidden.{i}" for i, m in enumerate(self.hidden) if isinstance(m, nn.Linear)]
        units = []
        for name, reader in zip(names, [*names[1:], "lm_head"], strict=True):
            neuron = torch.arange(self.get_submodule(name).out_features)
            units.append(UnitSet(len(neuron), [(name + ".weight", 0, neuron),
                                               (reader + ".weight", 1, neuron)]))
        return units

    def forward(self, idx: Tensor) -> Tensor:
        return self.lm_head(self.hidden(self.windows(idx)))

    def init_state(self, batch: int = 1) -> Tensor:
        """The tokens before the next one that its window needs: none yet, `[B, 0]`."""
        return torch.zeros(batch, 0, dtype=torch.long, device=self.wte.weight.device)

    def step(self, idx: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One window per new token; the state keeps the last `context - 1` tokens.

        The window just rolls on, so past the context there is nothing to slide: the logits
        are always exactly those of `forward` over the last `context` tokens.
        """
        seen = torch.cat([state, idx], dim=1)
        logits = self.lm_head(self.hidden(self.windows(seen, last=idx.size(1))))
        return logits, seen[:, max(0, seen.size(1) - (self.context - 1)):]

    def flops_per_token(self) -> int:
        """The hidden layers' and the output layer's matmuls."""
        macs = sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Linear))
        return 2 * macs
