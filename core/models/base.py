"""What every model family shares: the `LanguageModel` interface and the activation names.

Every family maps token ids `idx[B, T]` to next-token logits `[B, T, V]`: the logits at position
t predict token t+1 and depend only on tokens at positions <= t. That one contract is what lets
the trainer, the evaluation and the generator treat an MLP, an LSTM and a GPT alike.

Generation uses a second, incremental form of the same contract:

    state = model.init_state(batch)
    logits, state = model.step(prompt, state)   # prefill: logits [B, len(prompt), V]
    logits, state = model.step(next_ids, state) # then one token at a time: [B, 1, V]

`step` gives the logits the full forward would give for the new tokens after everything fed
before, as long as that fits in the model's window: a KV cache for `gpt`, the carried hidden
state for `lstm`/`gru`, the last `context - 1` tokens for `mlp`. Past the window each family
goes on in its own way (see its `step`), so generation can run forever. The state is opaque to
callers and may be updated in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module from its session name (`model.activation`)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        known = ", ".join(ACTIVATIONS)
        raise ValueError(f"unknown activation {name!r}; expected one of {known}") from None


@dataclass
class UnitSet:
    """Units of one layer that structured pruning removes whole: attention heads, neurons,
    recurrent hidden units.

    `parts` lists the weight slices the units own as (weight name in the state_dict, dim,
    unit): index i along `dim` of that weight belongs to unit `unit[i]`. A unit owns its own
    rows and the columns of every weight that reads it, so removing it zeroes both and nothing
    downstream sees it any more (even with biases on).
    """

    n: int
    parts: list[tuple[str, int, Tensor]]

    @classmethod
    def rows(cls, name: str, n: int, dim: int = 0) -> UnitSet:
        """`n` units, one per row (`dim=0`) or column of the weight `name`, owning nothing else."""
        return cls(n, [(name, dim, torch.arange(n))])


class LanguageModel(nn.Module):
    """Base class of the model families.

    Subclasses set `arch` (the `model.arch` name) and `context` (the tokens of context the model
    is trained with), and implement `forward` and `flops_per_token`; `prunable_units` makes
    a family's structure known to structured pruning.
    """

    arch: str = ""
    context: int
    vocab_size: int

    def forward(self, idx: Tensor) -> Tensor:
        """Logits `[B, T, V]` for token ids `idx[B, T]`; position t predicts token t+1."""
        raise NotImplementedError

    def init_state(self, batch: int = 1) -> Any:
        """A fresh decoding state for `step`, for `batch` sequences.

        This default, for a family without a faster way, keeps the tokens seen so far and
        `step` reruns `forward` over the last `context` of them.
        """
        return torch.zeros(batch, 0, dtype=torch.long, device=self.device)

    def step(self, idx: Tensor, state: Any) -> tuple[Tensor, Any]:
        """Logits `[B, t, V]` for new tokens `idx[B, t]` that follow those fed before, and the
        new state. `t <= context`; call it under `torch.inference_mode()` (or `no_grad`)."""
        seen = torch.cat([state, idx], dim=1)[:, -self.context:]
        return self(seen)[:, -idx.size(1):], seen

    @property
    def device(self) -> torch.device:
        """Where the weights are."""
        return next(self.parameters()).device

    def flops_per_token(self) -> int:
        """Forward-pass FLOPs per token: 2 per multiply-accumulate of the matmuls.

        Elementwise work (activations, norms, softmax, gates) and embedding lookups are left
        out, as in the usual 2N estimate; the backward pass costs about twice this.
        """
        raise NotImplementedError

    def prunable_units(self) -> list[UnitSet]:
        """The unit sets structured pruning removes whole units from (core/prune.py).

        A prunable weight (Linear or LSTM/GRU matrix, not tied to an embedding) that no set
        names loses whole rows, one unit per row; this default names none, so any family can
        be pruned, and a family that knows its heads or neurons says so here.
        """
        return []

    def num_params(self, include_positions: bool = True) -> int:
        """Trainable parameters, a tied weight counted once.

        `include_positions=False` leaves out position embeddings, like nanoGPT's
        `get_num_params(non_embedding=True)`: the figure scaling laws use.
        """
        total = sum(p.numel() for p in self.parameters())
        return total if include_positions else total - self.num_position_params()

    def num_position_params(self) -> int:
        """Parameters of position embeddings; 0 for families without them."""
        return 0
