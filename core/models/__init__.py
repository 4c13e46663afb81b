"""The model families behind one interface: `idx[B, T] -> logits[B, T, V]`.

`build_model` turns a session's `[model]` section into a model; the families are `mlp` (the
fixed-window "three-layer network"), `lstm` and `gru` (recurrent) and `gpt` (a transformer).
Importing this package imports torch, so `core/__init__.py` must not import it.
"""

from __future__ import annotations

from core.models.base import ACTIVATIONS, LanguageModel, UnitSet, make_activation
from core.models.gpt import GPT
from core.models.mlp import MLPLM
from core.models.rnn import RecurrentLM, State
from core.session import ModelConfig

__all__ = [
    "ACTIVATIONS", "GPT", "MLPLM", "LanguageModel", "RecurrentLM", "State", "UnitSet",
    "build_model",
    "make_activation",
]


def build_model(cfg: ModelConfig, vocab_size: int) -> LanguageModel:
    """A freshly initialised model of the family `cfg.arch`."""
    if cfg.arch == "gpt":
        return GPT(cfg, vocab_size)
    if cfg.arch == "mlp":
        return MLPLM(cfg, vocab_size)
    if cfg.arch in ("lstm", "gru"):
        return RecurrentLM(cfg, vocab_size)
    raise ValueError(f"unknown model.arch {cfg.arch!r}; expected one of mlp, lstm, gru, gpt")
