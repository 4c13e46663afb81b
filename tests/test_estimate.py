"""core.estimate must agree exactly with the models it predicts, and never import torch."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from core.estimate import (
    activation_bytes,
    flops_per_token,
    global_batch,
    human_bytes,
    human_count,
    memory_estimate,
    param_count,
    steps_per_epoch,
    tokens_per_step,
)
from core.session import ModelConfig, OptimConfig, TrainConfig

BASES = [
    ModelConfig(arch="gpt", n_layer=2, n_head=2, n_embd=32, context=16),
    ModelConfig(arch="gpt", n_layer=3, n_head=4, n_embd=48, context=24, bias=True),
    ModelConfig(arch="gpt", n_layer=1, n_head=1, n_embd=16, context=8, tie_embeddings=False),
    ModelConfig(arch="mlp", n_layer=2, n_embd=16, context=8),
    ModelConfig(arch="mlp", n_layer=1, n_embd=12, n_hidden=12, context=4),  # tie applies
    ModelConfig(arch="mlp", n_layer=3, n_embd=8, n_hidden=20, context=5, bias=True,
                tie_embeddings=False),
    ModelConfig(arch="lstm", n_layer=2, n_embd=16, context=8),
    ModelConfig(arch="lstm", n_layer=1, n_embd=16, n_hidden=24, context=8, bias=True),
    ModelConfig(arch="gru", n_layer=3, n_embd=20, context=8, bias=True, tie_embeddings=False),
    ModelConfig(arch="gru", n_layer=1, n_embd=10, n_hidden=10, context=8),
]
CONFIGS = BASES + [replace(c, bias=not c.bias) for c in BASES] + [
    replace(c, tie_embeddings=not c.tie_embeddings) for c in BASES]


def _id(cfg: ModelConfig) -> str:
    return (f"{cfg.arch}-L{cfg.n_layer}-d{cfg.n_embd}-h{cfg.n_hidden}-T{cfg.context}"
            f"-b{int(cfg.bias)}-t{int(cfg.tie_embeddings)}")


@pytest.mark.parametrize("cfg", CONFIGS, ids=_id)
@pytest.mark.parametrize("vocab", [17, 65])
def test_params_and_flops_match_the_models(cfg: ModelConfig, vocab: int) -> None:
    torch = pytest.importorskip("torch")
    from core.models import build_model

    torch.manual_seed(0)
    model = build_model(cfg, vocab)
    assert param_count(cfg, vocab) == model.num_params()
    assert flops_per_token(cfg, vocab) == model.flops_per_token()


def test_all_four_archs_are_covered() -> None:
    assert {c.arch for c in CONFIGS} == {"gpt", "mlp", "lstm", "gru"}


def test_memory_estimate_parts() -> None:
    cfg = ModelConfig(arch="gpt", n_layer=2, n_head=2, n_embd=32, context=16)
    n = param_count(cfg, 50)
    mem = memory_estimate(cfg, 50, OptimConfig(name="adamw"), TrainConfig(batch_size=4))
    assert mem.weights == mem.grads == 4 * n
    assert mem.optimizer == 8 * n
    assert mem.activations == activation_bytes(cfg, 50, 4)
    assert mem.total == mem.weights + mem.grads + mem.optimizer + mem.activations
    sgd = memory_estimate(cfg, 50, OptimConfig(name="sgd"), TrainConfig(batch_size=4))
    assert sgd.optimizer == 4 * n
    bigger = memory_estimate(cfg, 50, OptimConfig(), TrainConfig(batch_size=8))
    assert bigger.activations == 2 * mem.activations


def test_activations_grow_with_batch_and_context_for_every_arch() -> None:
    for arch in ("gpt", "mlp", "lstm", "gru"):
        cfg = ModelConfig(arch=arch, n_layer=2, n_head=2, n_embd=16, context=8)
        small = activation_bytes(cfg, 30, 2)
        assert small > 0
        assert activation_bytes(cfg, 30, 4) == 2 * small
        assert activation_bytes(replace(cfg, context=16), 30, 2) > small


def test_steps_per_epoch() -> None:
    cfg = ModelConfig(context=64)
    train = TrainConfig(batch_size=12, grad_accum=2)
    assert tokens_per_step(cfg, train) == 12 * 2 * 64
    assert steps_per_epoch(1536 * 10, cfg, train) == pytest.approx(10.0)


def test_human_formats() -> None:
    assert human_count(999) == "999"
    assert human_count(1234) == "1.23k"
    assert human_count(5_300_000) == "5.3M"
    assert human_bytes(512) == "512 B"
    assert human_bytes(3 * (1 << 20)) == "3 MB"


def test_estimate_does_not_import_torch() -> None:
    code = "import sys, core.estimate; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_global_batch_counts_every_process() -> None:
    """batch_size is per process: with train.nproc = 2 a step sees twice the tokens, and an
    epoch takes half the steps."""
    cfg = ModelConfig(context=64)
    train = TrainConfig(batch_size=12, grad_accum=2, nproc=2)
    assert global_batch(train) == 48
    assert tokens_per_step(cfg, train) == 48 * 64
    assert steps_per_epoch(1536 * 10, cfg, train) == pytest.approx(5.0)
