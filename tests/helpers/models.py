"""The one small model config of the tests: trains in a test, shows every part of its arch."""

from __future__ import annotations

from typing import Any

from core.session import ModelConfig

SMALL: dict[str, Any] = dict(n_layer=2, n_head=2, n_embd=32, context=16)


def tiny_config(arch: str, **settings: Any) -> ModelConfig:
    """A ModelConfig of `arch` at SMALL's sizes, `settings` (any ModelConfig field) over them."""
    return ModelConfig(**{"arch": arch, **SMALL, **settings})
