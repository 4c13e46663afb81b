"""What every model family shares: the `LanguageModel` interface and the activation names.

Every family maps token ids `idx[B, T]` to next-token logits `[B, T, V]`: the logits at position
t predict token t+1 and depend only on tokens at positions <= t. That one contract is what lets
the trainer, the evaluation and the generator treat an MLP, an LSTM and a GPT alike.
"""

from __future__ import annotations

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


class LanguageModel(nn.Module):
    """Base class of the model families.

    Subclasses set `arch` (the `model.arch` name) and `context` (the tokens of context the model
    is trained with), and implement `forward` and `flops_per_token`.
    """

    arch: str = ""
    context: int
    vocab_size: int

    def forward(self, idx: Tensor) -> Tensor:
        """Logits `[B, T, V]` for token ids `idx[B, T]`; position t predicts token t+1."""
        raise NotImplementedError

    def flops_per_token(self) -> int:
        """Forward-pass FLOPs per token: 2 per multiply-accumulate of the matmuls.

        Elementwise work (activations, norms, softmax, gates) and embedding lookups are left
        out, as in the usual 2N estimate; the backward pass costs about twice this.
        """
        raise NotImplementedError

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
