"""One optimizer step, the same for training (core/trainer.py) and for the fine-tuning that
follows pruning (core/prune.py): one place that says what a step is, so a fix to it (clipping,
loss scaling, the NaN check) reaches both.

A step: `accum` micro-batches forward and backward (each loss divided by `accum`, scaled for
fp16), the gradients unscaled and clipped, the optimizer stepped, the gradients cleared. A loss
or gradient norm that is not finite stops it before the optimizer moves, so the weights are
never hurt; only an fp16 scaler may see an inf gradient (it then skips the step itself).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.errors import LlmlabError

Batch = tuple[Tensor, Tensor]  # token ids [B, T] and their next tokens, on the model's device


class NonFiniteError(LlmlabError):
    """The loss or the gradient became NaN/inf: the run stops before the weights are hurt."""


def _mean_over_ranks(value: float) -> float:
    """The step's loss over every rank's batch (every rank then sees the same loss, so a
    NaN on one stops all of them at the same step: none is left waiting in a collective)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def optimizer_step(model: nn.Module, optimizer: torch.optim.Optimizer,
                   next_batch: Callable[[], Batch], *, step: int, accum: int = 1,
                   grad_clip: float = 0.0, forward: nn.Module | None = None,
                   scaler: torch.amp.GradScaler | None = None,
                   autocast: Callable[[], AbstractContextManager] = contextlib.nullcontext,
                   ) -> tuple[float, float]:
    """One optimizer step over `accum` batches of `next_batch()`; the mean loss and the
    gradient norm before clipping (`grad_clip` 0 = no clipping).

    `forward` is the module to call (a compiled or distributed wrapper of `model`; `model`
    itself by default); `step` (counted from 1) names the step in a NonFiniteError.
    """
    forward = model if forward is None else forward
    scaler = scaler if scaler is not None else torch.amp.GradScaler(enabled=False)
    total = 0.0
    for micro in range(accum):
        x, y = next_batch()
        # Under DDP the gradients are averaged across ranks once, on the last micro-step.
        last = micro == accum - 1
        sync = forward.no_sync() if hasattr(forward, "no_sync") and not last else \
            contextlib.nullcontext()
        with sync:
            with autocast():
                loss = F.cross_entropy(forward(x).float().flatten(0, 1), y.flatten())
            scaler.scale(loss / accum).backward()
        total += loss.item()
    loss_value = _mean_over_ranks(total / accum)
    if not math.isfinite(loss_value):
        optimizer.zero_grad(set_to_none=True)
        raise NonFiniteError(f"loss became {loss_value} at step {step}; "
                             "try a lower optim.lr or optim.grad_clip")
    scaler.unscale_(optimizer)
    clip = grad_clip if grad_clip > 0 else math.inf
    norm = float(nn.utils.clip_grad_norm_(model.parameters(), clip))
    if not math.isfinite(norm) and not scaler.is_enabled():
        optimizer.zero_grad(set_to_none=True)
        raise NonFiniteError(f"gradient norm became {norm} at step {step} "
                             f"(loss {loss_value:.4f}); try a lower optim.lr or optim.grad_clip")
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return loss_value, norm
