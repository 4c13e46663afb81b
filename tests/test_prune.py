"""Pruning: every method reaches its sparsity on every family, originals stay untouched, global
pruning ignores layer scale, structured pruning removes whole units, masks survive fine-tuning
and folding, gradual pruning is monotone, and the sweep measures on one fixed sample."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from core.dataset import TokenDataset, load_dataset
from core.evaluate import evaluate
from core.models import LanguageModel, UnitSet, build_model
from core.prune import (
    METHODS,
    FixedEvalSet,
    cubic_sparsity,
    evaluate_fixed,
    finetune,
    fold_masks,
    prunable_weights,
    prune_model,
    sparsity_report,
    sweep,
    update_masks,
)
from core.session import DataConfig, ModelConfig, OptimConfig
from core.train_step import NonFiniteError

VOCAB = 40
CONFIGS = {
    "gpt": ModelConfig(arch="gpt", n_layer=2, n_head=4, n_embd=32, context=16),
    # hidden != n_embd: the head is untied, so it is prunable and reads the last layer's units
    "lstm": ModelConfig(arch="lstm", n_layer=2, n_embd=16, n_hidden=32, context=16),
    "gru": ModelConfig(arch="gru", n_layer=2, n_embd=32, context=16, bias=True),  # tied head
    "mlp": ModelConfig(arch="mlp", n_layer=2, n_embd=8, n_hidden=32, context=4),
}
ARCHS = list(CONFIGS)
# Structured pruning removes whole units; in these tiny models one unit is up to ~4% of the
# prunable weights (a GPT head: 1024 of 24576), so it lands within one unit of the target.
STRUCTURED_TOL = 0.05


def model_of(arch: str, vocab_size: int = VOCAB, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(CONFIGS[arch], vocab_size)


def tokens(model: nn.Module, batch: int = 3) -> Tensor:
    return torch.randint(model.vocab_size, (batch, model.context),
                         generator=torch.Generator().manual_seed(1))


def zero_masks(model: nn.Module) -> dict[str, Tensor]:
    return {w.name: w.weight() == 0 for w in prunable_weights(model)}


@pytest.fixture
def dataset(tmp_path: Path) -> TokenDataset:
    path = tmp_path / "corpus.txt"
    path.write_text("the quick brown fox jumps over the lazy dog. " * 60, encoding="utf-8")
    return load_dataset(DataConfig(corpus=str(path)))


# ----------------------------------------------------------------------------- sparsity


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("arch", ARCHS)
def test_every_method_reaches_the_sparsity(arch: str, method: str) -> None:
    model = model_of(arch)
    for target in (0.0, 0.3, 0.6, 0.9):
        report = sparsity_report(prune_model(model, method, target))
        # unstructured: rounding to whole weights, at most half a weight per matrix
        tol = STRUCTURED_TOL if method == "structured" else (
            0.5 * len(report.layers) / report.prunable + 1e-9)
        assert report.sparsity == pytest.approx(target, abs=tol)
        if method in ("magnitude", "random"):  # per layer, each matrix to the target
            for layer in report.layers:
                assert layer.sparsity == pytest.approx(target, abs=0.5 / layer.total + 1e-9)


def test_what_is_prunable() -> None:
    gpt_names = {w.name for w in prunable_weights(model_of("gpt"))}
    assert "transformer.h.0.attn.c_attn.weight" in gpt_names
    assert "transformer.h.1.mlp.c_proj.weight" in gpt_names
    # Embeddings, the head tied to the token embedding, norms and biases stay dense.
    assert not {"lm_head.weight", "transformer.wte.weight", "transformer.wpe.weight"} & gpt_names
    assert all(name.endswith(".weight") and ".ln_" not in name for name in gpt_names)
    lstm_names = {w.name for w in prunable_weights(model_of("lstm"))}
    assert lstm_names == {"rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.weight_ih_l1",
                          "rnn.weight_hh_l1", "lm_head.weight"}  # untied head: a plain Linear
    assert {w.name for w in prunable_weights(model_of("gru"))} == {
        "rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.weight_ih_l1", "rnn.weight_hh_l1"}


def test_report_counts_the_whole_model() -> None:
    model = model_of("gpt")
    dense = sparsity_report(model)
    assert dense.params == model.num_params() and dense.nonzero_params == dense.params
    assert dense.sparsity == 0.0 == dense.overall_sparsity
    pruned = sparsity_report(prune_model(model, "magnitude", 0.5))
    assert pruned.params == dense.params  # weight_orig + weight_mask count once, as the weight
    assert pruned.params - pruned.nonzero_params == pruned.prunable_zeros
    assert 0.0 < pruned.overall_sparsity < pruned.sparsity == pytest.approx(0.5)


def test_bad_arguments_are_refused() -> None:
    model = model_of("mlp")
    with pytest.raises(ValueError, match="unknown pruning method"):
        prune_model(model, "lottery", 0.5)
    with pytest.raises(ValueError, match="sparsity"):
        prune_model(model, "magnitude", 1.5)


# ----------------------------------------------------------------------------- copies


@pytest.mark.parametrize("arch", ARCHS)
def test_the_original_model_is_untouched(arch: str) -> None:
    model = model_of(arch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = tokens(model)
    logits = model(x)
    pruned = prune_model(model, "structured", 0.5)
    assert pruned is not model and prune.is_pruned(pruned)
    assert not prune.is_pruned(model)
    assert all(not m._forward_pre_hooks for m in model.modules())
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert torch.equal(model(x), logits)


def test_inplace_prunes_the_model_itself_and_a_pruned_model_copies() -> None:
    model = model_of("lstm")
    assert prune_model(model, "magnitude", 0.3, inplace=True) is model
    model(tokens(model))  # a forward leaves non-leaf `weight` tensors, which deepcopy refuses
    masks = zero_masks(model)
    deeper = prune_model(model, "magnitude", 0.6)
    assert sparsity_report(deeper).sparsity == pytest.approx(0.6, abs=1e-3)
    assert sparsity_report(model).sparsity == pytest.approx(0.3, abs=1e-3)
    assert all(torch.equal(masks[k], v) for k, v in zero_masks(model).items())


# ----------------------------------------------------------------------------- global


def test_global_is_not_skewed_by_a_layer_of_another_scale() -> None:
    model = model_of("gpt")
    scaled = model.transformer.h[0].mlp.c_fc.weight
    with torch.no_grad():
        scaled.mul_(100.0)
    target = 0.6
    # Naive global pruning, one threshold on raw |w|, would all but spare the scaled layer.
    weights = [w.weight() for w in prunable_weights(model)]
    magnitudes = torch.cat([w.abs().flatten() for w in weights])
    naive_threshold = magnitudes.kthvalue(round(target * magnitudes.numel())).values
    assert (scaled.abs() <= naive_threshold).float().mean() < 0.05
    report = sparsity_report(prune_model(model, "global", target))
    assert report.sparsity == pytest.approx(target, abs=1e-3)
    layers = {layer.name: layer.sparsity for layer in report.layers}
    assert layers["transformer.h.0.mlp.c_fc.weight"] == pytest.approx(target, abs=0.1)
    assert all(s == pytest.approx(target, abs=0.1) for s in layers.values())


# ----------------------------------------------------------------------------- structured


def zero_rows(w: Tensor) -> Tensor:
    return (w == 0).all(dim=1)


def zero_cols(w: Tensor) -> Tensor:
    return (w == 0).all(dim=0)


def assert_rows_whole(w: Tensor) -> None:
    """Every row is removed entirely or untouched (trained weights are never exactly 0)."""
    touched = (w == 0).any(dim=1)
    assert torch.equal(touched, zero_rows(w))


def test_structured_removes_whole_heads_and_neurons() -> None:
    model = prune_model(model_of("gpt"), "structured", 0.5)
    C, n_head = 32, 4
    heads_removed = 0
    for block in model.transformer.h:
        c_attn, c_proj = block.attn.c_attn.weight, block.attn.c_proj.weight
        assert_rows_whole(c_attn)
        dead_rows = zero_rows(c_attn).view(3, n_head, C // n_head)  # q, k, v x heads x head size
        dead_heads = dead_rows.all(dim=2)
        assert torch.equal(dead_rows.any(dim=2), dead_heads)  # a head goes whole or not at all
        assert (dead_heads == dead_heads[0]).all()  # its q, k and v together
        assert torch.equal(zero_cols(c_proj).view(n_head, -1).all(dim=1), dead_heads[0])
        assert torch.equal(zero_cols(c_proj).view(n_head, -1).any(dim=1), dead_heads[0])
        heads_removed += int(dead_heads[0].sum())
        c_fc, mlp_proj = block.mlp.c_fc.weight, block.mlp.c_proj.weight
        assert_rows_whole(c_fc)  # an MLP neuron: its row in c_fc, its column in c_proj
        assert torch.equal(zero_rows(c_fc), zero_cols(mlp_proj))
        assert 0 < int(zero_rows(c_fc).sum()) < len(c_fc)
    assert heads_removed > 0


@pytest.mark.parametrize("arch", ["lstm", "gru"])
def test_structured_removes_whole_recurrent_units(arch: str) -> None:
    model = prune_model(model_of(arch), "structured", 0.4)
    rnn, H = model.rnn, model.hidden_size
    gates = 4 if arch == "lstm" else 3
    for layer in range(rnn.num_layers):
        w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
        dead = zero_rows(w_ih).view(gates, H)
        assert (dead == dead[0]).all()  # a unit loses its rows in every gate at once
        dead = dead[0]
        assert 0 < int(dead.sum()) < H
        assert torch.equal(zero_rows(w_hh).view(gates, H)[0], dead)
        assert zero_cols(w_hh)[dead].all()  # nothing in the layer reads the unit back
        reader = (getattr(rnn, f"weight_ih_l{layer + 1}") if layer + 1 < rnn.num_layers
                  else model.lm_head.weight if arch == "lstm" else None)  # gru: tied head
        if reader is not None:
            assert torch.equal(zero_cols(reader), dead)
    if arch == "lstm":  # no bias: a removed unit's output is exactly zero, at every step
        out, _ = rnn(model.wte(tokens(model)))
        assert (out[..., dead] == 0).all() and (out[..., ~dead] != 0).any()


def test_structured_removes_whole_mlp_neurons() -> None:
    model = prune_model(model_of("mlp"), "structured", 0.5)
    first, second, head = model.hidden[0].weight, model.hidden[3].weight, model.lm_head.weight
    assert_rows_whole(first)
    assert torch.equal(zero_rows(first), zero_cols(second))
    assert zero_rows(second).any() and zero_cols(head)[zero_rows(second)].all()


class PairLM(LanguageModel):
    """A toy family, not one of the shipped ones: pairs of neurons that only work together
    (a pair is one unit), read by the head. It is prunable by structure because it says so."""

    arch = "pairs"

    def __init__(self, vocab_size: int = VOCAB, n_embd: int = 8, pairs: int = 6) -> None:
        super().__init__()
        self.context, self.vocab_size, self.pairs = 4, vocab_size, pairs
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.fc = nn.Linear(n_embd, 2 * pairs, bias=False)
        self.lm_head = nn.Linear(2 * pairs, vocab_size, bias=False)

    def forward(self, idx: Tensor) -> Tensor:
        return self.lm_head(torch.relu(self.fc(self.wte(idx))))

    def prunable_units(self) -> list[UnitSet]:
        pair = torch.arange(2 * self.pairs) // 2  # neurons 2j and 2j+1 are unit j
        return [UnitSet(self.pairs, [("fc.weight", 0, pair), ("lm_head.weight", 1, pair)])]


def test_a_new_family_is_pruned_by_the_units_it_names() -> None:
    torch.manual_seed(0)
    model = prune_model(PairLM(), "structured", 0.5)
    fc, head = model.fc.weight, model.lm_head.weight
    assert_rows_whole(fc)
    dead = zero_rows(fc)
    assert dead.any() and torch.equal(dead, zero_cols(head))  # the readers' columns go too
    assert torch.equal(dead[0::2], dead[1::2])  # a pair goes as one
    assert not zero_rows(head).any()  # the head is a reader here, not rows to remove
    assert sparsity_report(model).sparsity == pytest.approx(0.5, abs=0.1)


def test_a_family_that_names_no_units_loses_whole_rows() -> None:
    class Plain(PairLM):
        def prunable_units(self) -> list[UnitSet]:
            return []

    torch.manual_seed(0)
    model = prune_model(Plain(), "structured", 0.5)
    for weight in (model.fc.weight, model.lm_head.weight):
        assert_rows_whole(weight)
        assert zero_rows(weight).any() and not zero_cols(weight).any()


# ----------------------------------------------------------------------------- random


def test_random_is_seeded_and_differs_from_magnitude() -> None:
    model = model_of("gpt")
    a = zero_masks(prune_model(model, "random", 0.5, seed=0))
    b = zero_masks(prune_model(model, "random", 0.5, seed=0))
    c = zero_masks(prune_model(model, "random", 0.5, seed=1))
    m = zero_masks(prune_model(model, "magnitude", 0.5))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert not all(torch.equal(a[k], m[k]) for k in a)
    # Magnitude keeps the large weights, random keeps a fair sample: less total |w| per layer.
    kept = [w.weight().abs().sum() for w in prunable_weights(prune_model(model, "magnitude", 0.5))]
    chance = [w.weight().abs().sum() for w in prunable_weights(prune_model(model, "random", 0.5))]
    assert all(x > y for x, y in zip(kept, chance, strict=True))


# ----------------------------------------------------------------------------- fine-tuning


@pytest.mark.parametrize(("arch", "optimizer"), [("gpt", "adamw"), ("gpt", "sgd"),
                                                 ("lstm", "adam"), ("mlp", "adadelta")])
def test_finetune_keeps_pruned_weights_at_zero(dataset: TokenDataset, arch: str,
                                               optimizer: str) -> None:
    model = prune_model(model_of(arch, dataset.tokenizer.vocab_size), "magnitude", 0.5)
    pruned = zero_masks(model)
    before = {w.name: w.weight().clone() for w in prunable_weights(model)}
    steps = []
    cfg = OptimConfig(name=optimizer, lr=1.0 if optimizer == "adadelta" else 1e-2,
                      weight_decay=0.1)
    losses = finetune(model, dataset, 6, cfg, batch_size=4, seed=0,
                      on_step=lambda step, loss: steps.append((step, loss)))
    assert len(losses) == 6 and all(math.isfinite(x) for x in losses)
    assert steps == list(enumerate(losses))
    for w in prunable_weights(model):
        assert (w.weight()[pruned[w.name]] == 0).all()
        assert not torch.equal(w.weight(), before[w.name])  # the survivors did train
    assert sparsity_report(model).sparsity == pytest.approx(0.5, abs=1e-3)


def test_finetune_takes_the_training_step_and_stops_before_a_nan_moves_weights(
        dataset: TokenDataset) -> None:
    """Fine-tuning steps as training does (core.train_step): a non-finite loss stops it
    before the optimizer moves any weight."""
    model = prune_model(model_of("gpt", dataset.tokenizer.vocab_size), "magnitude", 0.5)
    with torch.no_grad():
        model.transformer.ln_f.weight[0] = float("nan")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NonFiniteError, match=r"^fine-tuning: loss became nan at step 1"):
        finetune(model, dataset, 3, OptimConfig(), batch_size=4, seed=0)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items()
               if k != "transformer.ln_f.weight")


def test_update_masks_keeps_an_existing_optimizer_working(dataset: TokenDataset) -> None:
    """Gradual pruning: the trainer's optimizer, built on the dense model, trains on."""
    model = model_of("gpt", dataset.tokenizer.vocab_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    update_masks(model, "magnitude", 0.5)
    tracked = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert {id(p) for p in model.parameters()} <= tracked
    pruned = zero_masks(model)
    for _ in range(3):
        x, y = dataset.get_batch("train", 4, model.context)
        loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert all((w.weight()[pruned[w.name]] == 0).all() for w in prunable_weights(model))


# ----------------------------------------------------------------------------- folding


@pytest.mark.parametrize("arch", ARCHS)
def test_fold_masks_makes_pruning_permanent(arch: str) -> None:
    model = prune_model(model_of(arch), "magnitude", 0.5)
    x = tokens(model)
    logits = model(x)
    report = sparsity_report(model)
    assert any(k.endswith(("_orig", "_mask")) for k in model.state_dict())
    assert fold_masks(model) is model
    state = model.state_dict()
    assert not any(k.endswith(("_orig", "_mask")) for k in state)
    assert not prune.is_pruned(model)
    assert torch.equal(model(x), logits)
    assert sparsity_report(model) == report
    fresh = model_of(arch, seed=1)
    fresh.load_state_dict(state)  # strict: the same keys as a dense model
    assert torch.equal(fresh(x), logits)


# ----------------------------------------------------------------------------- gradual


def test_cubic_schedule() -> None:
    s = [cubic_sparsity(t, 0.1, 0.8, 10, 110) for t in range(0, 130)]
    assert s[0] == s[10] == 0.1 and s[110] == s[129] == 0.8
    assert all(a <= b for a, b in zip(s, s[1:], strict=False))
    assert s[60] == pytest.approx(0.8 + (0.1 - 0.8) * 0.5**3)
    assert s[20] - s[10] > s[110] - s[100]  # fast at first, slow at the end


@pytest.mark.parametrize("method", METHODS)
def test_update_masks_is_monotone(method: str) -> None:
    model = model_of("gpt")
    update_masks(model, method, 0.3)
    first = zero_masks(model)
    with torch.no_grad():  # training moves the weights, the pruned ones' originals included
        for w in prunable_weights(model):
            w.param.add_(torch.randn_like(w.param) * w.param.std() * 3)
    update_masks(model, method, 0.6)
    second = zero_masks(model)
    assert all((second[k] | ~first[k]).all() for k in first)  # pruned stays pruned
    tol = STRUCTURED_TOL if method == "structured" else 1e-3
    assert sparsity_report(model).sparsity == pytest.approx(0.6, abs=tol)
    update_masks(model, method, 0.4)  # a lower level prunes nothing back in
    assert all(torch.equal(v, second[k]) for k, v in zero_masks(model).items())


# ----------------------------------------------------------------------------- sweep


def test_sweep_measures_every_level_on_one_fixed_sample(dataset: TokenDataset) -> None:
    model = model_of("gpt", dataset.tokenizer.vocab_size)
    finetune(model, dataset, 60, OptimConfig(), batch_size=16, seed=0, lr=1e-2)
    assert evaluate(model, dataset, "val", 2, 8, seed=3).loss < math.log(model.vocab_size) - 1
    levels = (0.0, 0.5, 0.95)
    seen = []
    points = sweep(model, dataset, levels, "magnitude", eval_batches=2, batch_size=8, seed=3,
                   on_point=seen.append)
    assert seen == points and [p.sparsity for p in points] == list(levels)
    real = [p.real_sparsity for p in points]
    assert real == sorted(real) and real[-1] == pytest.approx(0.95, abs=1e-3)
    dense = evaluate_fixed(model, FixedEvalSet.draw(dataset, model.context, 2, 8, seed=3))
    assert points[0].loss == dense.loss
    assert dense.loss == evaluate(model, dataset, "val", 2, 8, seed=3).loss  # same batches
    assert points[-1].loss > points[0].loss and points[-1].top1 <= points[0].top1
    assert not prune.is_pruned(model)


def test_fixed_eval_set_is_fixed(dataset: TokenDataset) -> None:
    a = FixedEvalSet.draw(dataset, 16, batches=3, batch_size=4, seed=5)
    b = FixedEvalSet.draw(dataset, 16, batches=3, batch_size=4, seed=5)
    assert a.x.shape == (3, 4, 16) and torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert torch.equal(a.x[:, :, 1:], a.y[:, :, :-1])
