"""An evaluation report: every figure the before/after tables show, from one pass over a split.

`evaluation_report` draws the same batches as `core.evaluate.evaluate` with the same seed (its
own `torch.Generator`, never the global RNG), or the whole split with `iters=None` (the
default of `llmlab eval` and the app's Evaluate: a sample is an estimate, the split is the
figure), so its loss, perplexity, top-1 and top-5 are exactly `evaluate`'s, and adds:

- bits per token: loss / ln 2.
- bits per character. With the `char` tokenizer a token is a character, so it is bits per
  token. With `word`, `bpe` or `jieba` it is bits per token divided by the corpus' characters
  per token (`n_chars / n_tokens` over the whole corpus, as `core.stats` shows it): an
  estimate, since the evaluated windows may tokenize a little more or less densely than the
  corpus on average, and a word tokenizer's `<unk>` makes it optimistic. Good enough to put a
  word model next to a character model; not a figure to quote to three decimals.
- macro-F1 over next-token predictions. The prediction is the argmax of the logits (ties go to
  the lower token id). For each token id c: precision = tp / (times c was predicted), recall =
  tp / (times c was the target), F1 = 2PR / (P + R), which equals 2 tp / (predicted +
  targets), 0 when tp = 0. Macro-F1 is the plain mean of F1 over the ids that occur among the
  targets or the predictions of the evaluated tokens; ids with neither are left out (they say
  nothing about the model). This is scikit-learn's `f1_score(average="macro")` with its default
  labels. Unlike top-1 accuracy, it weighs a rare token as much as a frequent one.
- ROC AUC, macro one-vs-rest. For each token id c that occurs among the targets (and not as
  every target), the model's score for c at each evaluated position is its log-probability
  (the same order as the probability, without float32's ties at 0), positives are the
  positions whose target is c, negatives all others; AUC_c is the chance that a random
  positive scores above a random negative, ties counting one half (the Mann-Whitney U
  statistic over n_pos * n_neg, from average ranks). The figure is the plain mean of AUC_c:
  scikit-learn's `roc_auc_score(multi_class="ovr", average="macro")` over those classes. 0.5
  is a model that cannot tell a token from the others, 1.0 one that always ranks the right
  token's positions first. It needs every score of a position, kept in memory: past
  `AUC_BUDGET` numbers (a large split with a large vocabulary) an evenly spaced subset of the
  positions is scored, and the report says how many (`auc_tokens`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from core.dataset import TokenDataset
from core.evaluate import batch_sums, eval_batches


@dataclass
class EvalReport:
    """Figures over every predicted token of a split: all of it, or `batches` sampled."""

    split: str
    loss: float  # mean cross-entropy per token, in nats
    perplexity: float  # exp(loss)
    bits_per_token: float  # loss / ln 2
    bits_per_char: float  # bits_per_token / chars_per_token (exact for char, else estimated)
    chars_per_token: float  # 1 for char; the corpus' n_chars / n_tokens otherwise
    top1: float  # fraction of targets that were the argmax
    top5: float  # fraction of targets among the 5 most likely (fewer if the vocabulary is)
    macro_f1: float  # mean per-token-id F1 of the argmax predictions (see the module doc)
    f1_classes: int  # token ids the macro-F1 averages over
    roc_auc: float  # macro one-vs-rest ROC AUC (see the module doc); NaN: no class to average
    auc_classes: int  # token ids the AUC averages over
    auc_tokens: int  # positions it scored: all of `tokens`, or an evenly spaced subset
    tokens: int  # tokens predicted
    tokenizer: str  # the tokenizer kind; bits_per_char is exact only for "char"
    batches: int | None = None  # random batches evaluated; None: the whole split

    @property
    def bits_per_char_exact(self) -> bool:
        return self.tokenizer == "char"

    @property
    def scope(self) -> str:
        """What was evaluated, in words: "full val split: 12,345 tokens" or "sampled 20
        batches of the val split: 7,680 tokens"."""
        if self.batches is None:
            return f"full {self.split} split: {self.tokens:,} tokens"
        n = self.batches
        return f"sampled {n} batch{'es' * (n != 1)} of the {self.split} split: " \
               f"{self.tokens:,} tokens"

    def rows(self) -> list[tuple[str, str, str]]:
        """(figure, value, note) lines, as `llmlab eval` and the app's Train pane show them."""
        exact = self.bits_per_char_exact
        return [
            ("loss", f"{self.loss:.4f}", "nats per token"),
            ("perplexity", f"{self.perplexity:.2f}", ""),
            ("bits/token", f"{self.bits_per_token:.4f}", ""),
            ("bits/char" if exact else "bits/char (est.)", f"{self.bits_per_char:.4f}",
             "" if exact else f"{self.tokenizer} tokens, {self.chars_per_token:.2f} chars/token"),
            ("top-1", f"{self.top1:.2%}", "next-token accuracy"),
            ("top-5", f"{self.top5:.2%}", ""),
            ("macro-F1", f"{self.macro_f1:.4f}", f"over {self.f1_classes} token ids"),
            ("ROC AUC", f"{self.roc_auc:.4f}", f"macro one-vs-rest over {self.auc_classes} "
             f"token ids" + (f", {self.auc_tokens:,} of the tokens"
                             if self.auc_tokens < self.tokens else "")),
        ]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluation_report(model: nn.Module, dataset: TokenDataset, split: str, iters: int | None,
                      batch_size: int, seed: int, device: str = "cpu",
                      autocast: Callable[[], AbstractContextManager] | None = None
                      ) -> EvalReport:
    """Loss, perplexity, bits per token and character, top-1/top-5, macro-F1 and ROC AUC
    over `iters` random batches of `split`, drawn from a generator seeded with `seed`; over
    the whole split with `iters=None`."""
    sums = []  # per batch: loss sum, top-1 hits, top-5 hits
    counts: Tensor | None = None  # per token id: true positives, predictions, targets
    if iters is None:
        expected = sum(max(0, len(p) - 1) for p in dataset.split_parts(split))
    else:
        expected = iters * batch_size * model.context
    auc = AucScores(expected, model.vocab_size)
    tokens = 0
    for logits, y in eval_batches(model, dataset, split, iters, batch_size, seed, device,
                                  autocast):
        sums.append(batch_sums(logits, y))
        batch_counts = class_counts(logits, y)
        counts = batch_counts if counts is None else counts + batch_counts
        auc.add(logits, y)
        tokens += y.numel()
    assert counts is not None
    loss, top1, top5 = (torch.stack(sums).cpu().double().sum(0) / tokens).tolist()
    f1, classes = macro_f1(*counts.cpu())
    roc_auc, auc_classes = auc.macro_auc()
    kind = dataset.tokenizer.kind
    chars_per_token = 1.0 if kind == "char" else dataset.n_chars / max(dataset.n_tokens, 1)
    bits = loss / math.log(2)
    return EvalReport(split=split, loss=loss, perplexity=math.exp(loss), bits_per_token=bits,
                      bits_per_char=bits / chars_per_token, chars_per_token=chars_per_token,
                      top1=top1, top5=top5, macro_f1=f1, f1_classes=classes,
                      roc_auc=roc_auc, auc_classes=auc_classes, auc_tokens=auc.kept,
                      tokens=tokens, tokenizer=kind, batches=iters)


def class_counts(logits: Tensor, targets: Tensor) -> Tensor:
    """`[3, V]` int64: per token id, true positives, times predicted (argmax), times a target."""
    vocab = logits.size(-1)
    pred, y = logits.argmax(-1).flatten(), targets.flatten()
    return torch.stack([
        torch.bincount(y[pred == y], minlength=vocab),
        torch.bincount(pred, minlength=vocab),
        torch.bincount(y, minlength=vocab),
    ])


def macro_f1(tp: Tensor, predicted: Tensor, actual: Tensor) -> tuple[float, int]:
    """(macro-F1, classes averaged) from per-class counts; classes with no target and no
    prediction are left out, and (0.0, 0) when none is left."""
    present = (predicted + actual) > 0
    classes = int(present.sum())
    if classes == 0:
        return 0.0, 0
    f1 = 2 * tp[present].double() / (predicted[present] + actual[present]).double()
    return float(f1.mean()), classes


AUC_BUDGET = 1 << 24  # scores kept for the ROC AUC (float32: 64 MiB)


class AucScores:
    """The scores the ROC AUC needs, gathered batch by batch: every position's log-softmax
    row and target, or every `stride`-th position's when `expected` positions of `vocab`
    scores would pass `AUC_BUDGET` numbers."""

    def __init__(self, expected: int, vocab: int, budget: int = AUC_BUDGET) -> None:
        self.stride = max(1, math.ceil(expected * vocab / budget))
        self.seen = 0
        self.scores: list[Tensor] = []
        self.targets: list[Tensor] = []

    @property
    def kept(self) -> int:
        return sum(len(t) for t in self.targets)

    def add(self, logits: Tensor, targets: Tensor) -> None:
        logits, targets = logits.flatten(0, -2), targets.flatten()
        first = (-self.seen) % self.stride  # the first position of this batch to keep
        self.seen += len(targets)
        rows = slice(first, None, self.stride)
        self.scores.append(torch.log_softmax(logits[rows].float(), -1).cpu())
        self.targets.append(targets[rows].cpu())

    def macro_auc(self) -> tuple[float, int]:
        if not self.targets:
            return math.nan, 0
        return macro_auc(torch.cat(self.scores), torch.cat(self.targets))


def macro_auc(scores: Tensor, targets: Tensor) -> tuple[float, int]:
    """(macro one-vs-rest ROC AUC, classes averaged) of `scores[N, V]` (higher = more likely
    class c) against `targets[N]`: the mean over the classes that occur among the targets
    without being all of them; (NaN, 0) when there is no such class."""
    n = len(targets)
    classes = [c for c in torch.unique(targets).tolist() if 0 < (targets == c).sum() < n]
    if not classes:
        return math.nan, 0
    aucs = []
    for c in classes:
        positive = targets == c
        n_pos = int(positive.sum())
        ranks = average_ranks(scores[:, c])
        u = ranks[positive].sum().item() - n_pos * (n_pos + 1) / 2
        aucs.append(u / (n_pos * (n - n_pos)))
    return float(sum(aucs) / len(aucs)), len(classes)


def average_ranks(values: Tensor) -> Tensor:
    """1-based ranks of `values` (float64), tied values sharing the mean of their ranks."""
    order = torch.argsort(values)
    _, inverse, group = torch.unique_consecutive(values[order], return_inverse=True,
                                                 return_counts=True)
    last = torch.cumsum(group, 0).double()  # the rank of each group's last member
    mean = last - (group.double() - 1) / 2
    ranks = torch.empty(len(values), dtype=torch.float64)
    ranks[order] = mean[inverse]
    return ranks
