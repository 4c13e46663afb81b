"""The model families: shapes, causality, parameter counts, FLOPs, and that each can learn."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers.models import tiny_config
from torch import nn

from core.models import (
    ACTIVATIONS,
    GPT,
    MLPLM,
    LanguageModel,
    RecurrentLM,
    build_model,
    make_activation,
)
from core.session import ModelConfig

ARCHS = ("mlp", "lstm", "gru", "gpt")
VOCAB = 11


def tokens(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("arch", ARCHS)
def test_build_model_gives_the_family_asked_for(arch: str) -> None:
    model = build_model(tiny_config(arch), VOCAB)
    expected = {"mlp": MLPLM, "lstm": RecurrentLM, "gru": RecurrentLM, "gpt": GPT}[arch]
    assert isinstance(model, expected) and isinstance(model, LanguageModel)
    assert model.arch == arch
    assert model.context == 16


def test_build_model_rejects_unknown_arch() -> None:
    with pytest.raises(ValueError, match="arch"):
        build_model(tiny_config("transformer-xl"), VOCAB)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("length", [1, 7, 16])
def test_logits_shape(arch: str, length: int) -> None:
    model = build_model(tiny_config(arch), VOCAB)
    assert model(tokens(3, length)).shape == (3, length, VOCAB)


@pytest.mark.parametrize("arch", ARCHS)
def test_causal_logits_at_t_ignore_later_tokens(arch: str) -> None:
    model = build_model(tiny_config(arch), VOCAB).eval()
    idx = tokens(2, 16)
    full = model(idx)
    for t in (0, 5, 14):
        changed = idx.clone()
        changed[:, t + 1:] = (changed[:, t + 1:] + 1) % VOCAB
        out = model(changed)
        torch.testing.assert_close(out[:, : t + 1], full[:, : t + 1], rtol=1e-5, atol=1e-5)
        assert not torch.allclose(out[:, t + 1:], full[:, t + 1:])


def test_mlp_sees_only_its_window() -> None:
    model = build_model(tiny_config("mlp", context=4), VOCAB).eval()
    idx = tokens(1, 12)
    changed = idx.clone()
    changed[0, 0] = (changed[0, 0] + 1) % VOCAB
    diff = (model(idx) - model(changed)).abs().amax(dim=-1)[0]
    assert (diff[:4] > 0).all()  # positions 0..3 have token 0 in their window
    assert (diff[4:] == 0).all()  # later windows start after it


def test_gpt_rejects_sequences_longer_than_its_context() -> None:
    model = build_model(tiny_config("gpt"), VOCAB)
    with pytest.raises(ValueError, match="context"):
        model(tokens(1, 17))


def test_gpt_needs_n_head_to_divide_n_embd() -> None:
    with pytest.raises(ValueError, match="n_head"):
        build_model(tiny_config("gpt", n_head=5), VOCAB)


# nanoGPT (model.py) with n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=65:
# per block 12 * 128**2 matmul weights + 2 LayerNorms; plus ln_f, wte (tied) and wpe.
NANOGPT = dict(arch="gpt", n_layer=4, n_head=4, n_embd=128, context=64, tie_embeddings=True)


def test_gpt_parameter_count_equals_nanogpt_without_bias() -> None:
    model = build_model(ModelConfig(**NANOGPT, bias=False), 65)
    assert model.num_params(include_positions=False) == 795_904
    assert model.num_params() == 804_096
    assert model.num_params() - model.num_params(include_positions=False) == 64 * 128


def test_gpt_parameter_count_equals_nanogpt_with_bias() -> None:
    # bias=True (nanoGPT's default) adds LayerNorm and Linear biases: 1408 a block, 128 for ln_f.
    model = build_model(ModelConfig(**NANOGPT, bias=True), 65)
    assert model.num_params(include_positions=False) == 801_664
    assert model.num_params() == 809_856


def test_untied_gpt_counts_the_head_separately() -> None:
    model = build_model(ModelConfig(**{**NANOGPT, "tie_embeddings": False}), 65)
    assert model.num_params() == 804_096 + 65 * 128


def test_gpt_flops_per_token_formula() -> None:
    model = build_model(ModelConfig(**NANOGPT), 65)
    L, d, T, V = 4, 128, 64, 65
    assert model.flops_per_token() == 2 * (L * 12 * d * d + d * V) + 4 * L * T * d


@pytest.mark.parametrize("arch", ARCHS)
def test_flops_per_token_positive_and_growing_with_width(arch: str) -> None:
    narrow = build_model(tiny_config(arch, n_embd=32), VOCAB).flops_per_token()
    wide = build_model(tiny_config(arch, n_embd=64), VOCAB).flops_per_token()
    assert 0 < narrow < wide


@pytest.mark.parametrize("arch", ARCHS)
def test_flops_per_token_at_least_twice_the_matmul_weights(arch: str) -> None:
    model = build_model(tiny_config(arch), VOCAB)
    # Every parameter except embeddings, norms and biases is used once per token in a matmul.
    matmul = sum(p.numel() for name, p in model.named_parameters()
                 if p.dim() == 2 and "wte" not in name and "wpe" not in name)
    assert model.flops_per_token() >= 2 * matmul


@pytest.mark.parametrize("arch", ARCHS)
def test_each_family_overfits_a_repeating_sequence(arch: str) -> None:
    pattern = torch.tensor([0, 1, 2, 3, 1, 4, 5, 2, 6, 3])  # next token needs more than one back
    data = pattern.repeat(4)[None, :33]
    x, y = data[:, :-1], data[:, 1:]
    cfg = tiny_config(arch, n_layer=1, n_embd=32, context=32, activation="relu")
    model = build_model(cfg, VOCAB)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0], losses


@pytest.mark.parametrize("arch", ARCHS)
def test_tied_embeddings_share_storage(arch: str) -> None:
    cfg = tiny_config(arch, n_hidden=32)  # mlp and rnn tie only when the hidden width equals n_embd
    model = build_model(cfg, VOCAB)
    head, emb = model.lm_head.weight, model.get_submodule(_wte(arch)).weight
    assert head is emb
    assert head.data_ptr() == emb.data_ptr()
    with torch.no_grad():
        emb[0, 0] = 42.0
    assert head[0, 0].item() == 42.0


@pytest.mark.parametrize("arch", ARCHS)
def test_untied_embeddings_are_separate(arch: str) -> None:
    model = build_model(tiny_config(arch, n_hidden=32, tie_embeddings=False), VOCAB)
    assert model.lm_head.weight.data_ptr() != model.get_submodule(_wte(arch)).weight.data_ptr()


@pytest.mark.parametrize("arch", ["mlp", "lstm", "gru"])
def test_tying_is_skipped_when_widths_differ(arch: str) -> None:
    model = build_model(tiny_config(arch, n_hidden=48, tie_embeddings=True), VOCAB)
    assert model.lm_head.weight.shape == (VOCAB, 48)
    assert model.lm_head.weight.data_ptr() != model.wte.weight.data_ptr()


def _wte(arch: str) -> str:
    return "transformer.wte" if arch == "gpt" else "wte"


@pytest.mark.parametrize("arch", ARCHS)
def test_no_dropout_is_deterministic_in_train_mode(arch: str) -> None:
    model = build_model(tiny_config(arch, dropout=0.0), VOCAB).train()
    idx = tokens(2, 16)
    assert torch.equal(model(idx), model(idx))


@pytest.mark.parametrize("arch", ARCHS)
def test_dropout_acts_in_train_mode_only(arch: str) -> None:
    model = build_model(tiny_config(arch, dropout=0.5), VOCAB)
    idx = tokens(2, 16)
    model.train()
    assert not torch.equal(model(idx), model(idx))
    model.eval()
    assert torch.equal(model(idx), model(idx))


@pytest.mark.parametrize("arch", ["lstm", "gru"])
def test_carried_state_continues_the_sequence(arch: str) -> None:
    model = build_model(tiny_config(arch), VOCAB).eval()
    idx = tokens(2, 16)
    full = model(idx)
    first, state = model.forward_with_state(idx[:, :9])
    second, _ = model.forward_with_state(idx[:, 9:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), full)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_is_used_by_the_models(name: str) -> None:
    assert isinstance(make_activation(name), nn.Module)
    for arch in ("mlp", "gpt"):
        model = build_model(tiny_config(arch, activation=name), VOCAB)
        assert any(isinstance(m, ACTIVATIONS[name]) for m in model.modules())


def test_unknown_activation_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="swish"):
        make_activation("swish")


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("arch", ARCHS)
def test_bias_option_reaches_every_layer(arch: str, bias: bool) -> None:
    model = build_model(tiny_config(arch, bias=bias), VOCAB)
    gpt_head = "lm_head" if arch == "gpt" else None  # nanoGPT's head never has a bias
    layers = [m for name, m in model.named_modules()
              if isinstance(m, (nn.Linear, nn.LayerNorm)) and name != gpt_head]
    assert layers
    assert all((m.bias is not None) == bias for m in layers)
    if arch in ("lstm", "gru"):
        assert all(hasattr(model.rnn, f"bias_ih_l{i}") == bias for i in range(2))
