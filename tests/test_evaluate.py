"""Evaluation: figures of an untrained and a perfect model, determinism, RNG hygiene, modes,
and per-token loss over short and long sequences."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.dataset import TokenDataset, load_dataset
from core.evaluate import EvalResult, evaluate, per_token_loss, split_windows
from core.models import build_model
from core.session import DataConfig, ModelConfig

CONTEXT = 8


def dataset_of(tmp_path: Path, text: str) -> TokenDataset:
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return load_dataset(DataConfig(corpus=str(path), split=[0.8, 0.2, 0.0]))


@pytest.fixture
def dataset(tmp_path: Path) -> TokenDataset:
    return dataset_of(tmp_path, "the quick brown fox jumps over the lazy dog. " * 40)


def gpt(vocab_size: int, arch: str = "gpt", dropout: float = 0.1) -> nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, n_layer=1, n_head=2, n_embd=16, context=CONTEXT,
                      dropout=dropout)
    return build_model(cfg, vocab_size)


class Oracle(nn.Module):
    """Knows the corpus: logits that put (almost) all the mass on the true next token."""

    def __init__(self, next_token: Tensor, context: int = CONTEXT) -> None:
        super().__init__()
        self.context = context
        self.vocab_size = len(next_token)
        self.register_buffer("next_token", next_token)

    def forward(self, idx: Tensor) -> Tensor:
        return 100.0 * F.one_hot(self.next_token[idx], self.vocab_size).float()


def run(model: nn.Module, dataset: TokenDataset, seed: int = 0, **kw) -> EvalResult:
    return evaluate(model, dataset, "val", iters=3, batch_size=4, seed=seed, **kw)


def test_untrained_model_is_as_unsure_as_uniform(dataset: TokenDataset) -> None:
    vocab = dataset.tokenizer.vocab_size
    result = run(gpt(vocab), dataset)
    assert result.split == "val"
    assert result.tokens == 3 * 4 * CONTEXT
    assert result.loss == pytest.approx(math.log(vocab), abs=0.15)
    assert result.perplexity == pytest.approx(math.exp(result.loss))
    assert 0.0 <= result.top1 <= result.top5 <= 1.0
    assert all(isinstance(v, float) for v in (result.loss, result.perplexity, result.top1,
                                              result.top5))


def test_perfect_model_scores_perfectly(tmp_path: Path) -> None:
    dataset = dataset_of(tmp_path, "abc" * 200)
    a, b, c = dataset.tokenizer.encode("abc").tolist()
    table = torch.zeros(dataset.tokenizer.vocab_size, dtype=torch.long)
    table[a], table[b], table[c] = b, c, a
    result = run(Oracle(table), dataset)
    assert result.top1 == 1.0 and result.top5 == 1.0
    assert result.loss < 1e-6
    assert result.perplexity == pytest.approx(1.0)


def test_top5_is_capped_by_a_small_vocabulary(tmp_path: Path) -> None:
    dataset = dataset_of(tmp_path, "ab" * 200)
    result = run(gpt(dataset.tokenizer.vocab_size), dataset)
    assert result.top5 == 1.0  # two tokens: both are always in the top min(5, 2)


def test_same_seed_same_figures(dataset: TokenDataset) -> None:
    model = gpt(dataset.tokenizer.vocab_size)
    assert run(model, dataset, seed=3) == run(model, dataset, seed=3)
    assert run(model, dataset, seed=3).loss != run(model, dataset, seed=4).loss


def test_evaluation_leaves_the_random_streams_alone(dataset: TokenDataset) -> None:
    model = gpt(dataset.tokenizer.vocab_size)
    model.train()  # dropout 0.1: a forward pass in training mode would draw random numbers
    expected = dataset.get_batch("train", 4, CONTEXT, torch.Generator().manual_seed(7))[0]
    training = torch.Generator().manual_seed(7)
    global_state = torch.get_rng_state()
    run(model, dataset)
    assert torch.equal(torch.get_rng_state(), global_state)
    assert torch.equal(dataset.get_batch("train", 4, CONTEXT, training)[0], expected)


def test_training_mode_is_restored(dataset: TokenDataset) -> None:
    model = gpt(dataset.tokenizer.vocab_size)
    model.train()
    model.transformer.drop.eval()  # a module in its own mode keeps it
    run(model, dataset)
    assert model.training and model.transformer.h[0].training
    assert not model.transformer.drop.training
    model.eval()
    run(model, dataset)
    assert not any(m.training for m in model.modules())


def test_training_mode_is_restored_after_an_error(dataset: TokenDataset) -> None:
    class Broken(Oracle):
        def forward(self, idx: Tensor) -> Tensor:
            assert not self.training
            raise RuntimeError("boom")

    model = Broken(torch.zeros(dataset.tokenizer.vocab_size, dtype=torch.long)).train()
    with pytest.raises(RuntimeError, match="boom"):
        run(model, dataset)
    assert model.training


def test_autocast_factory_wraps_the_forward_pass(dataset: TokenDataset) -> None:
    model = gpt(dataset.tokenizer.vocab_size)
    entered = []

    def autocast():
        entered.append(True)
        return torch.autocast("cpu", dtype=torch.bfloat16)

    result = run(model, dataset, autocast=autocast)
    assert entered
    assert result.loss == pytest.approx(run(model, dataset).loss, abs=0.05)


# --------------------------------------------------------------------------- per-token loss

def direct_loss(model: nn.Module, ids: Tensor) -> Tensor:
    with torch.no_grad():
        return F.cross_entropy(model.eval()(ids[None, :-1])[0], ids[1:], reduction="none")


def test_per_token_loss_of_a_short_sequence(dataset: TokenDataset) -> None:
    model = gpt(dataset.tokenizer.vocab_size)
    ids = torch.tensor(dataset.split_tokens("val")[:CONTEXT + 1], dtype=torch.long)
    losses = per_token_loss(model, ids)
    assert losses.shape == (CONTEXT,)
    torch.testing.assert_close(losses, direct_loss(model, ids))
    torch.testing.assert_close(per_token_loss(model, ids[:4]), direct_loss(model, ids[:4]))
    assert per_token_loss(model, ids[:1]).shape == (0,)


def test_per_token_loss_slides_a_full_window_over_a_long_sequence(
        dataset: TokenDataset) -> None:
    model = gpt(dataset.tokenizer.vocab_size)
    ids = torch.tensor(dataset.split_tokens("val")[:5 * CONTEXT], dtype=torch.long)
    losses = per_token_loss(model, ids)
    assert losses.shape == (len(ids) - 1,)
    torch.testing.assert_close(losses[:CONTEXT], direct_loss(model, ids[:CONTEXT + 1]))
    for j in (CONTEXT + 1, 2 * CONTEXT + 3, len(ids) - 1):  # token j after its CONTEXT tokens
        window = ids[j - CONTEXT:j + 1]
        torch.testing.assert_close(losses[j - 1], direct_loss(model, window)[-1])


def test_per_token_loss_matches_an_mlp_reading_everything_at_once(
        dataset: TokenDataset, monkeypatch: pytest.MonkeyPatch) -> None:
    """The MLP sees exactly `context` tokens anywhere, so one pass equals the sliding windows."""
    monkeypatch.setattr("core.evaluate._LOGITS_BUDGET", 1)  # one window per forward pass
    model = gpt(dataset.tokenizer.vocab_size, arch="mlp")
    tokens = dataset.split_tokens("train")[:6 * CONTEXT]  # a read-only memmap slice
    ids = torch.tensor(tokens, dtype=torch.long)
    torch.testing.assert_close(per_token_loss(model, tokens), direct_loss(model, ids))


def test_the_whole_split_predicts_every_token_once(dataset: TokenDataset) -> None:
    """iters=None: consecutive windows over the split (a shorter last one), each target once,
    and the loss is the mean of the per-window losses a plain loop computes."""
    data = dataset.split_tokens("val")
    assert (len(data) - 1) % CONTEXT  # the corpus leaves a tail: the short window is tested
    windows = list(split_windows(dataset, "val", batch_size=5, context=CONTEXT))
    targets = torch.cat([y.flatten() for _, y in windows])
    assert targets.tolist() == data[1:].tolist()
    assert windows[-1][1].shape == (1, (len(data) - 1) % CONTEXT)

    model = gpt(dataset.tokenizer.vocab_size, dropout=0.0)
    result = evaluate(model, dataset, "val", None, batch_size=5, seed=0)
    assert result.tokens == len(data) - 1
    ids = torch.tensor(data.astype("int64"))
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, CONTEXT):
            x = ids[start:start + CONTEXT][None]
            y = ids[start + 1:start + CONTEXT + 1][None]
            x = x[:, :y.size(1)]
            total += F.cross_entropy(model(x)[0], y[0], reduction="sum").item()
    assert result.loss == pytest.approx(total / (len(ids) - 1), rel=1e-5)
