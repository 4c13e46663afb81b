"""Optimizers and learning-rate schedules, as in nanoGPT's `configure_optimizers` and `get_lr`.

Weight decay pulls weights towards zero. That regularises the matrices of linear layers, but
on biases, norm gains and embeddings it only hurts: a LayerNorm gain decayed towards 0 switches
its features off, and a rare token's embedding would shrink just for being rare. So parameters
are split into two groups, "decay" and "no_decay", and only the first gets `weight_decay`.

`lr_at` is a pure function of the step, so a resumed run continues its schedule exactly, and a
learning rate edited live (a new peak) reshapes the rest of the schedule rather than jumping.

Weight decay is decoupled for every optimizer (Loshchilov & Hutter's AdamW/SGDW): each step
multiplies the decayed weights by (1 - lr * weight_decay), lr being the step's scheduled rate,
apart from the gradient. torch applies `weight_decay` to SGD, Adam and Adadelta as an L2 term
added to the gradient instead; with Adam that term is normalised like any gradient, so an
AdamW-sized 0.1 outweighs the loss and drives a word-level LSTM to uniform predictions
(loss = ln(vocab), gradients ~1e-16). So: AdamW as torch has it, Adam with torch's
`decoupled_weight_decay` (with decay it *is* AdamW; weight_decay = 0 gives plain Adam), and SGD
and Adadelta through the small subclasses below. One meaning, one number, whichever optimizer.

Adadelta is the odd one out: its `lr` scales an update that is already of the right size by
construction (torch's default is 1.0). The same schedule multiplies it as for the other
optimizers, so with Adadelta set `optim.lr` near 1.0 and read the schedule as a multiplier;
its decay per step is then lr * weight_decay too, so give it a weight_decay near 1e-4.
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


class _DecoupledDecay:
    """For torch optimizers whose `weight_decay` is an L2 gradient term (SGD, Adadelta): shrink
    the weights by (1 - lr * weight_decay) before the update, as AdamW does, and let torch step
    with no decay of its own. The group keeps `weight_decay` (one key for `set_weight_decay`,
    state_dict and resume, whatever the optimizer)."""

    param_groups: list[dict]

    @torch.no_grad()
    def step(self, closure=None):
        decays = [group["weight_decay"] for group in self.param_groups]
        for group, wd in zip(self.param_groups, decays, strict=True):
            if wd:
                for p in group["params"]:
                    if p.grad is not None:
                        p.mul_(1.0 - group["lr"] * wd)
            group["weight_decay"] = 0.0  # torch's step must not add its L2 term as well
        try:
            return super().step(closure)
        finally:
            for group, wd in zip(self.param_groups, decays, strict=True):
                group["weight_decay"] = wd


class SGDW(_DecoupledDecay, torch.optim.SGD):
    """SGD (with momentum) and decoupled weight decay."""


class AdadeltaW(_DecoupledDecay, torch.optim.Adadelta):
    """Adadelta and decoupled weight decay."""


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
        return SGDW(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.name in ("adam", "adamw"):
        # One optimizer step() of the default GPT (n_embd=128, 4 layers, 0.8M parameters) on
        # a 2-core CPU, torch 2.13, best of 5 x 50 steps:
        #   AdamW: fused 0.36 ms, default (a for-loop on CPU) 1.36 ms, foreach 1.91 ms
        #   Adam:  fused 0.40 ms, default 1.62 ms, foreach 3.11 ms
        # so fused wherever it exists; elsewhere torch's own default.
        fused = True if device_type in _FUSED_DEVICES else None
        if cfg.name == "adamw":
            return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=fused)
        return torch.optim.Adam(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=fused,
                                decoupled_weight_decay=True)
    if cfg.name == "adadelta":
        return AdadeltaW(groups, lr=cfg.lr)
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


STRONG_DECAY = 0.01  # a step's decay from this on (AdamW's default: 1e-4) is worth a warning


def decay_warning(cfg: OptimConfig) -> str | None:
    """A line when the decay shrinks weights by 1 % or more a step at the peak lr: an
    AdamW-sized weight_decay kept when switching to an optimizer with a much larger lr (SGD at
    0.1, Adadelta at 1.0) would otherwise drag every weight towards zero, silently."""
    per_step = cfg.lr * cfg.weight_decay
    if per_step < STRONG_DECAY * (1 - 1e-9):  # (0.1 * 0.1 is 0.010000000000000002)
        return None
    return (f"optim.weight_decay {cfg.weight_decay:g} with optim.lr {cfg.lr:g} ({cfg.name}) "
            f"shrinks the weights by {min(per_step, 1):.0%} a step (decay is decoupled: lr * "
            f"weight_decay); about {1e-4 / cfg.lr:.1g} gives AdamW's usual 1e-4")


def set_weight_decay(optimizer: torch.optim.Optimizer, wd: float) -> None:
    """Use weight decay `wd` from the next step on; the "no_decay" group stays at 0.

    Also after loading an optimizer state: a checkpoint from before decay was decoupled holds
    Adam groups with `decoupled_weight_decay = False`, which would bring the L2 term back."""
    for group in optimizer.param_groups:
        if group.get("name") == "decay":
            group["weight_decay"] = wd
        if "decoupled_weight_decay" in group:
            group["decoupled_weight_decay"] = True
