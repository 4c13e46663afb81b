"""The evaluation report: every figure checked against values worked out by hand on a toy
corpus and a model whose logits the test sets, plus agreement with core.evaluate."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from core.dataset import TokenDataset, load_dataset
from core.evaluate import evaluate
from core.models import build_model
from core.report import (
    AucScores,
    EvalReport,
    average_ranks,
    class_counts,
    evaluation_report,
    macro_auc,
    macro_f1,
)
from core.session import DataConfig, ModelConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# The toy corpus. The train split (first half) repeats "abac": with a context of 4, every
# window holds each of the transitions a->b, b->a, a->c, c->a exactly once, wherever it starts.
# The second half only brings d..j into the vocabulary, so that top-5 is not trivially 1.
TRAIN = "abac" * 15
OTHER = ("defghij" * 9)[:60]
CONTEXT = 4


def dataset_of(tmp_path: Path, text: str, **cfg) -> TokenDataset:
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return load_dataset(DataConfig(corpus=str(path), **cfg))


@pytest.fixture
def toy(tmp_path: Path) -> TokenDataset:
    ds = dataset_of(tmp_path, TRAIN + OTHER, split=[0.5, 0.5, 0.0])
    assert ds.tokenizer.vocab_size == 10 and ds.split_tokens("train").tolist() == \
        ds.tokenizer.encode(TRAIN).tolist()
    return ds


class Bigram(nn.Module):
    """Logits that depend only on the current token, read from a table the test writes."""

    def __init__(self, table: Tensor, context: int = CONTEXT) -> None:
        super().__init__()
        self.context = context
        self.vocab_size = table.size(0)
        self.register_buffer("table", table.float())

    def forward(self, idx: Tensor) -> Tensor:
        return self.table[idx]


#            a  b  c  d  e  f  g  h  i  j
ROW_A = [1, 5, 4, 0, 0, 0, 0, 0, 0, 0]  # predicts b; c is 2nd
ROW_B = [3, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # predicts a
ROW_C = [0, 1, 1, 5, 2, 2, 2, 2, 2, 1]  # predicts d; a is last of 10


def toy_model(ds: TokenDataset) -> Bigram:
    a, b, c = (int(ds.tokenizer.encode(ch)[0]) for ch in "abc")
    assert (a, b, c) == (0, 1, 2)
    table = torch.zeros(10, 10)
    table[a], table[b], table[c] = torch.tensor(ROW_A), torch.tensor(ROW_B), torch.tensor(ROW_C)
    return Bigram(table)


def nll(row: list[float], target: int) -> float:
    return math.log(sum(math.exp(v) for v in row)) - row[target]


def test_figures_match_a_hand_computation(toy: TokenDataset) -> None:
    report = evaluation_report(toy_model(toy), toy, "train", iters=3, batch_size=5, seed=7)
    a, b, c = 0, 1, 2
    # Per window: (input, target, prediction) = (a, b, b) (b, a, a) (a, c, b) (c, a, d).
    loss = (nll(ROW_A, b) + nll(ROW_B, a) + nll(ROW_A, c) + nll(ROW_C, a)) / 4
    assert report.loss == pytest.approx(loss, rel=1e-6)
    assert report.perplexity == pytest.approx(math.exp(loss), rel=1e-6)
    assert report.bits_per_token == pytest.approx(loss / math.log(2), rel=1e-6)
    assert report.bits_per_char == report.bits_per_token  # char tokenizer: a token is a char
    assert report.chars_per_token == 1.0 and report.bits_per_char_exact
    # top-1: a->b and b->a are right, a->c (predicted b) and c->a (predicted d) wrong.
    assert report.top1 == pytest.approx(2 / 4)
    # top-5: a->c has c 2nd (a hit), c->a has a last of 10 (a miss).
    assert report.top5 == pytest.approx(3 / 4)
    # Per window, predictions b, a, b, d against targets b, a, c, a:
    #   a: predicted 1x, target 2x, right 1x -> precision 1/1, recall 1/2 -> F1 2/3
    #   b: predicted 2x, target 1x, right 1x -> precision 1/2, recall 1/1 -> F1 2/3
    #   c: predicted 0x, target 1x, right 0x -> precision 0 (none), recall 0 -> F1 0
    #   d: predicted 1x, target 0x, right 0x -> precision 0, recall 0 (none) -> F1 0
    #   e..j: never predicted, never a target -> left out
    f1 = {"a": 2 * 1 * 0.5 / 1.5, "b": 2 * 0.5 * 1 / 1.5, "c": 0.0, "d": 0.0}
    assert report.macro_f1 == pytest.approx(sum(f1.values()) / 4)
    assert report.macro_f1 == pytest.approx(1 / 3)
    assert report.f1_classes == 4
    assert report.tokens == 3 * 5 * CONTEXT
    assert report.split == "train" and report.tokenizer == "char"
    assert report.to_dict()["macro_f1"] == report.macro_f1
    # ROC AUC, one class against the rest, scored by each position's probability of the class.
    # With inputs a, b, a, c the probabilities are those of ROW_A, ROW_B, ROW_A, ROW_C:
    #   a (targets of the b and c inputs): p(a | b) = 0.69 > p(a | a) = 0.013 > p(a | c)
    #     = 0.005, so one positive is above the negatives, one below: AUC 1/2
    #   b (target of the first a): p(b | a) = 0.70 ties the other a input (1/2) and is above
    #     b's 0.034 and c's 0.014: AUC (1/2 + 1 + 1) / 3 = 5/6
    #   c (target of the second a): p(c | a) = 0.26 ties the first a, beats 0.034, 0.014: 5/6
    #   d..j are never a target: left out.
    assert report.auc_classes == 3 and report.auc_tokens == report.tokens
    assert report.roc_auc == pytest.approx((1 / 2 + 5 / 6 + 5 / 6) / 3)
    assert ("ROC AUC", f"{13 / 18:.4f}", "macro one-vs-rest over 3 token ids") in report.rows()


def test_macro_f1_weighs_every_class_alike(toy: TokenDataset) -> None:
    table = torch.zeros(10, 10)
    table[1, 0] = table[2, 0] = 9.0  # b -> a, c -> a
    table[0, 1] = 9.0  # a -> b (a -> c is then wrong: a is followed by b and c alike)
    report = evaluation_report(Bigram(table), toy, "train", iters=2, batch_size=4, seed=0)
    # predictions b, a, b, a against targets b, a, c, a: a F1 1, b F1 2/3, c F1 0.
    assert report.macro_f1 == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert report.top1 == pytest.approx(3 / 4)


def test_class_counts_and_macro_f1_follow_the_definitions() -> None:
    """Against precision and recall counted one token at a time."""
    rng = random.Random(0)
    vocab, n = 7, 200
    logits = torch.randn(n, vocab, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([rng.choice([0, 1, 1, 2, 4]) for _ in range(n)])
    preds = logits.argmax(-1).tolist()
    f1s = []
    for c in range(vocab):
        tp = sum(p == c and t == c for p, t in zip(preds, targets.tolist(), strict=True))
        n_pred, n_true = preds.count(c), targets.tolist().count(c)
        if n_pred == 0 and n_true == 0:
            continue
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_true if n_true else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if tp else 0.0)
    f1, classes = macro_f1(*class_counts(logits, targets))
    assert classes == len(f1s)
    assert f1 == pytest.approx(sum(f1s) / len(f1s))


def test_macro_auc_by_hand() -> None:
    #                       class 0  1    2    3
    scores = torch.tensor([[0.6, 0.3, 0.1, 0.0],   # target 0
                           [0.3, 0.5, 0.2, 0.0],   # target 1
                           [0.2, 0.5, 0.3, 0.0],   # target 0
                           [0.1, 0.2, 0.7, 0.0]])  # target 2
    targets = torch.tensor([0, 1, 0, 2])
    # class 0: positives 0.6, 0.2 against negatives 0.3, 0.1: 3 of 4 pairs ordered -> 3/4
    # class 1: positive 0.5 against 0.3 (above), 0.5 (tie: 1/2), 0.2 (above) -> 2.5/3
    # class 2: positive 0.7 above 0.1, 0.2, 0.3 -> 1; class 3 is never a target: left out
    auc, classes = macro_auc(scores, targets)
    assert classes == 3
    assert auc == pytest.approx((3 / 4 + 2.5 / 3 + 1) / 3)
    assert average_ranks(torch.tensor([0.5, 0.1, 0.5, 0.9])).tolist() == [2.5, 1, 2.5, 4]


def test_macro_auc_follows_the_pairwise_definition() -> None:
    """Against P(positive above negative) + P(tie) / 2, counted pair by pair."""
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (60, 5), generator=gen).float()  # many ties
    targets = torch.tensor([0, 0, 1, 3, 4] * 12)
    per_class = []
    for c in (0, 1, 3, 4):
        pos = [float(s) for s, t in zip(scores[:, c], targets, strict=True) if t == c]
        neg = [float(s) for s, t in zip(scores[:, c], targets, strict=True) if t != c]
        wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
        per_class.append(wins / (len(pos) * len(neg)))
    assert macro_auc(scores, targets) == (pytest.approx(sum(per_class) / 4), 4)


def test_macro_auc_without_a_class_to_average_is_nan() -> None:
    auc, classes = macro_auc(torch.zeros(3, 2), torch.tensor([1, 1, 1]))  # no negatives
    assert math.isnan(auc) and classes == 0


def test_auc_scores_keep_an_evenly_spaced_subset_past_the_budget() -> None:
    logits = torch.randn(10, 3, 4, generator=torch.Generator().manual_seed(0))
    targets = torch.arange(30).remainder(4).view(10, 3)
    full = AucScores(30, 4)
    every_3rd = AucScores(30, 4, budget=40)  # 30 positions x 4 scores > 40: stride 3
    for b in range(10):
        full.add(logits[b], targets[b])
        every_3rd.add(logits[b], targets[b])
    assert full.kept == 30 and every_3rd.stride == 3 and every_3rd.kept == 10
    assert torch.equal(torch.cat(every_3rd.targets), targets.flatten()[::3])
    assert torch.equal(torch.cat(every_3rd.scores),
                       torch.log_softmax(logits.flatten(0, 1)[::3], -1))


def test_macro_f1_of_nothing_is_zero() -> None:
    zeros = torch.zeros(5, dtype=torch.long)
    assert macro_f1(zeros, zeros, zeros) == (0.0, 0)


# --------------------------------------------------------------------------- a real model

@pytest.fixture
def text_dataset(tmp_path: Path) -> TokenDataset:
    return dataset_of(tmp_path, "the quick brown fox jumps over the lazy dog. " * 30,
                      split=[0.8, 0.2, 0.0])


def tiny_gpt(vocab: int) -> nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(arch="gpt", n_layer=1, n_head=2, n_embd=16, context=8,
                                   dropout=0.1), vocab)


def test_agrees_with_evaluate_and_is_deterministic(text_dataset: TokenDataset) -> None:
    model = tiny_gpt(text_dataset.tokenizer.vocab_size)
    rng = torch.get_rng_state()
    report = evaluation_report(model, text_dataset, "val", iters=3, batch_size=4, seed=5)
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG is not touched
    again = evaluation_report(model, text_dataset, "val", iters=3, batch_size=4, seed=5)
    assert report == again
    result = evaluate(model, text_dataset, "val", iters=3, batch_size=4, seed=5)
    assert (report.loss, report.perplexity, report.top1, report.top5, report.tokens) == \
        (result.loss, result.perplexity, result.top1, result.top5, result.tokens)
    assert model.training  # the mode is restored (dropout was off while evaluating)
    other = evaluation_report(model, text_dataset, "val", iters=3, batch_size=4, seed=6)
    assert other.loss != report.loss
    assert 0.0 <= report.macro_f1 <= 1.0 and 1 <= report.f1_classes <= model.vocab_size
    assert 0.0 <= report.roc_auc <= 1.0 and 1 <= report.auc_classes <= model.vocab_size


def test_word_tokenizer_reports_bits_per_char_from_chars_per_token(tmp_path: Path) -> None:
    # "aa b " is two words and five characters: 2.5 characters per token.
    ds = dataset_of(tmp_path, "aa b " * 50, tokenizer="word")
    assert ds.n_tokens == 100 and ds.n_chars == 250
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="mlp", n_layer=1, n_embd=8, context=4), 3)
    report = evaluation_report(model, ds, "val", iters=2, batch_size=2, seed=0)
    assert isinstance(report, EvalReport)
    assert report.tokenizer == "word" and not report.bits_per_char_exact
    assert report.chars_per_token == pytest.approx(2.5)
    assert report.bits_per_token == pytest.approx(report.loss / math.log(2))
    assert report.bits_per_char == pytest.approx(report.bits_per_token / 2.5)


def test_needs_at_least_one_batch(toy: TokenDataset) -> None:
    with pytest.raises(ValueError, match="iters"):
        evaluation_report(toy_model(toy), toy, "train", iters=0, batch_size=1, seed=0)
