"""Optimizers and learning-rate schedules, as in nanoGPT's `configure_optimizers` and `get_lr`.

Weight decay pulls weights towards zero. That regularises the matrices of linear layers, but
on biases, norm gains and embeddings it only hurts: a LayerNorm gain decayed towards 0 switches
its features off, and a rare token's embedding would shrink just for being rare. So parameters
are split into two groups, "decay" and "no_decay", and only the first gets `weight_decay`.

`lr_at` is a pure function of the step, so a resumed run continues its schedule exactly, and a
learning rate edited live (a new peak) reshapes the rest of the schedule rather than jumping.

Adadelta is the odd one out: its `lr` scales an update that is already of the right size by
construction (torch's default is 1.0). The same schedule multiplies it as for the other
optimizers, so with Adadelta set `optim.lr` near 1.0 and read the schedule as a multiplier.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from core.errors import LlmlabError
from core.session import OptimConfig

# Devices with fused Adam/AdamW kernels in every torch this project supports (>= 2.4).
_FUSED_DEVICES = ("cpu", "cuda")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """The "decay" group (matrices) and the "no_decay" group (everything else), in that order.

    Embedding weights are found by identity, so a head tied to the token embedding (the same
    tensor) is recognised, and `named_parameters` yields a tied tensor only once.
    """
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 and id(p) not in embeddings else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]


def build_optimizer(model: nn.Module, cfg: OptimConfig,
                    device_type: str = "cpu") -> torch.optim.Optimizer:
    """The optimizer `cfg.name` over the model's two parameter groups.

    `device_type` is where the model trains (it may still be on the CPU when this is called):
    Adam and AdamW use fused kernels there when torch has them.
    """
    groups = param_groups(model, cfg.weight_decay)
    if cfg.name == "sgd":
        if cfg.nesterov and cfg.momentum <= 0:
            raise LlmlabError("optim.nesterov: Nesterov momentum needs optim.momentum > 0 "
                              f"(got {cfg.momentum:g})")
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.name in ("adam", "adamw"):
        # One optimizer step() of the default GPT (n_embd=128, 4 layers, 0.8M parameters) on
        # a 2-core CPU, torch 2.13, best of 5 x 50 steps:
        #   AdamW: fused 0.36 ms, default (a for-loop on CPU) 1.36 ms, foreach 1.91 ms
        #   Adam:  fused 0.40 ms, default 1.62 ms, foreach 3.11 ms
        # so fused wherever it exists; elsewhere torch's own default.
        cls = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
        fused = True if device_type in _FUSED_DEVICES else None
        return cls(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=fused)
    if cfg.name == "adadelta":
        return torch.optim.Adadelta(groups, lr=cfg.lr)
    raise LlmlabError(f"optim.name: unknown optimizer {cfg.name!r}; "
                      "expected one of sgd, adam, adamw, adadelta")


def lr_at(step: int, cfg: OptimConfig, max_steps: int, peak_lr: float | None = None) -> float:
    """The learning rate for `step` (0-based, the step about to run).

    Linear warmup to the peak over `cfg.warmup_steps` (never 0 at step 0, as in nanoGPT), then
    `cfg.schedule` from the peak down to `cfg.min_lr` at `max_steps`, flat after it. `peak_lr`
    overrides `cfg.lr`, for a peak changed live; a floor above that peak is lowered to it.
    """
    peak = cfg.lr if peak_lr is None else peak_lr
    warmup = cfg.warmup_steps
    if step < warmup:
        return peak * (step + 1) / (warmup + 1)
    if cfg.schedule == "constant":
        return peak
    floor = min(cfg.min_lr, peak)
    progress = 1.0 if max_steps <= warmup else (step - warmup) / (max_steps - warmup)
    progress = min(max(progress, 0.0), 1.0)
    if cfg.schedule == "cosine":
        return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak - floor)
    if cfg.schedule == "linear":
        return peak + progress * (floor - peak)
    raise LlmlabError(f"optim.schedule: unknown schedule {cfg.schedule!r}; "
                      "expected one of constant, cosine, linear")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Use `lr` from the next step on, in every group."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def set_weight_decay(optimizer: torch.optim.Optimizer, wd: float) -> None:
    """Use weight decay `wd` from the next step on; the "no_decay" group stays at 0."""
    for group in optimizer.param_groups:
        if group.get("name") == "decay":
            group["weight_decay"] = wd
