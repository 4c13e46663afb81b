"""Evaluation: loss, perplexity and next-token accuracy on a split, and per-token loss.

Evaluation draws its batches from its own generator seeded with `seed`, so two evaluations of
the same model give the same figures (curves compare like with like), and evaluating in the
middle of training neither consumes the training batch stream nor touches torch's global RNG:
a run gives the same result whatever its eval_interval.

`iters=None` evaluates the whole split instead: consecutive windows of `model.context`
tokens, each token of the split predicted exactly once (the last window may be shorter).
A figure a user quotes is this one; the sampled form is the cheap estimate the training
loop plots.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.dataset import TokenDataset
from core.errors import LlmlabError

# Logits computed at once by per_token_loss, in numbers (float32: 64 MiB).
_LOGITS_BUDGET = 1 << 24


@dataclass
class EvalResult:
    """Figures over every predicted token of a split (all of it, or `iters` batches)."""

    split: str
    loss: float  # mean cross-entropy per token, in nats
    perplexity: float  # exp(loss): as unsure as a uniform choice among this many tokens
    top1: float  # fraction of tokens that were the most likely prediction
    top5: float  # fraction of tokens among the 5 most likely (fewer if the vocabulary is)
    tokens: int  # tokens predicted
    auc: float | None = None  # macro one-vs-rest ROC AUC (core.report), when asked for


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) and no gradients; each module's own mode is restored after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training


def evaluate(model: nn.Module, dataset: TokenDataset, split: str, iters: int | None,
             batch_size: int, seed: int, device: str = "cpu",
             autocast: Callable[[], AbstractContextManager] | None = None) -> EvalResult:
    """Loss, perplexity, top-1 and top-5 accuracy over `iters` random batches of `split`
    (`iters=None`: over the whole split).

    `autocast` makes a fresh context for the forward pass (e.g. bf16 autocast); the loss is
    computed in float32 whatever the logits' precision.
    """
    sums, tokens = [], 0
    for logits, y in eval_batches(model, dataset, split, iters, batch_size, seed, device,
                                  autocast):
        sums.append(batch_sums(logits, y))
        tokens += y.numel()
    loss, top1, top5 = (torch.stack(sums).cpu().double().sum(0) / tokens).tolist()
    return EvalResult(split, loss, math.exp(loss), top1, top5, tokens)


def eval_batches(model: nn.Module, dataset: TokenDataset, split: str, iters: int | None,
                 batch_size: int, seed: int, device: str = "cpu",
                 autocast: Callable[[], AbstractContextManager] | None = None,
                 ) -> Iterator[tuple[Tensor, Tensor]]:
    """(float32 logits, targets) of `iters` batches of `split`, the model in eval mode;
    `iters=None`: of the whole split (`split_windows`).

    Sampled batches come from a generator seeded with `seed`, so every evaluation with the
    same seed sees the same tokens, and neither the global RNG nor the training batch stream
    moves.
    """
    if iters is None:
        batches = split_windows(dataset, split, batch_size, model.context)
    else:
        if iters < 1:
            raise ValueError(f"evaluation needs iters >= 1 (got {iters})")
        generator = torch.Generator().manual_seed(seed)
        batches = (dataset.get_batch(split, batch_size, model.context, generator)
                   for _ in range(iters))
    with eval_mode(model):
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            with (autocast or nullcontext)():
                logits = model(x)
            yield logits.float(), y


def split_windows(dataset: TokenDataset, split: str, batch_size: int, context: int
                  ) -> Iterator[tuple[Tensor, Tensor]]:
    """The whole split as (x, y) batches of consecutive, non-overlapping windows: every token
    after the split's first is a target exactly once. The tail that does not fill a window
    comes last, as a batch of one shorter window. A split in two parts (a fold's train) is
    each part in turn: no window spans the held-out block between them."""
    parts = [p for p in dataset.split_parts(split) if len(p) > 1]
    if not parts:
        raise LlmlabError(f"data.split: the {split} split has {dataset.split_size(split)} "
                          "tokens; evaluating it needs at least 2")
    for data in parts:
        yield from _part_windows(data, batch_size, context)


def _part_windows(data, batch_size: int, context: int) -> Iterator[tuple[Tensor, Tensor]]:
    n = len(data) - 1  # targets
    full = n // context
    for first in range(0, full, batch_size):
        rows = min(batch_size, full - first)
        start = first * context
        block = torch.from_numpy(data[start:start + rows * context + 1].astype(np.int64))
        x = block[:-1].view(rows, context)
        y = block[1:].view(rows, context)
        yield x, y
    if n % context:
        tail = torch.from_numpy(data[full * context:].astype(np.int64))
        yield tail[None, :-1], tail[None, 1:]


def batch_sums(logits: Tensor, y: Tensor) -> Tensor:
    """[loss sum, top-1 hits, top-5 hits] of one batch, kept on the device (no sync)."""
    logits, y = logits.flatten(0, -2), y.flatten()
    loss = F.cross_entropy(logits, y, reduction="sum")
    top = logits.topk(min(5, logits.size(-1)), dim=-1).indices
    hits = top == y[:, None]
    return torch.stack([loss, hits[:, 0].sum().float(), hits.any(-1).sum().float()])


def per_token_loss(model: nn.Module, token_ids: Tensor | Sequence[int],
                   device: str = "cpu") -> Tensor:
    """The loss (nats) of each token after the first given the ones before it: `[T - 1]`.

    The first `model.context` tokens are scored in one window; every later token with the
    `model.context` tokens right before it, one sliding window per token, windows batched.
    `token_ids` may also be a list or a numpy array (e.g. a slice of a dataset's memmap).
    """
    if isinstance(token_ids, Tensor):
        ids = token_ids.long().to(device)
    else:  # a copy: torch warns about sharing a read-only memmap
        ids = torch.tensor(token_ids, dtype=torch.long, device=device)
    inputs, targets = ids[:-1], ids[1:]
    n, context = inputs.numel(), model.context
    if n == 0:
        return torch.zeros(0)
    with eval_mode(model):
        first = min(n, context)
        logits = model(inputs[None, :first])[0]
        losses = [F.cross_entropy(logits.float(), targets[:first], reduction="none")]
        if n > context:
            # Window w holds inputs w .. w+context-1; its last logits predict targets[w+context-1].
            windows = inputs.unfold(0, context, 1)[1:]
            rows = max(1, _LOGITS_BUDGET // (context * model.vocab_size))
            for start in range(0, len(windows), rows):
                last = model(windows[start:start + rows])[:, -1].float()
                wanted = targets[context + start:context + start + len(last)]
                losses.append(F.cross_entropy(last, wanted, reduction="none"))
    return torch.cat(losses).cpu()
