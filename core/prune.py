"""Pruning: zero the least useful weights of a trained model and measure what that costs.

Which weights: the weight matrices of Linear layers and of LSTM/GRU layers (`weight_ih_l*`,
`weight_hh_l*`). Embeddings are left dense, and so is a head tied to the token embedding (it
*is* the embedding): an embedding row is the only representation of its token, and magnitude
says little about it (a rare token's row is small for being rare, not for being useless).
Position embeddings, biases and norm gains are left dense too: they are few and each matters.

How: as masks, with torch's own reparametrisation (`torch.nn.utils.prune.custom_from_mask`).
The module keeps the trained values as `weight_orig`, a 0/1 `weight_mask` buffer, and a hook
that recomputes `weight = weight_orig * weight_mask` before every forward. So masked weights are
zero in every forward and get zero gradient, whatever the optimizer does to `weight_orig`
(momentum, Adam moments left from before pruning, weight decay): zeroing weights after each
optimizer step instead would rely on every training loop remembering to do it. It works for
LSTM/GRU too (the hook's `setattr` refreshes their cached weight list), and `weight_orig` is
the very Parameter the model had before, so an optimizer built on the dense model keeps
training the pruned one. (`torch.nn.utils.parametrize` could do the same; `prune` is the
module made for it, with `prune.remove` to fold masks and `prune.is_pruned`.) The masks
themselves we compute: torch's iterative pruning measures `amount` against the weights still
alive, not against the whole matrix as `sparsity` here does.

`sparsity` always means the fraction of a weight set that is zero afterwards, and pruning is
monotone: a weight pruned once stays pruned (re-pruning to a lower sparsity changes nothing).
`fold_masks` makes the zeros permanent before saving, so a checkpoint is not twice the size.

Methods:
- `magnitude`: per weight matrix, the smallest |w| (L1 unstructured), each to `sparsity`.
- `global`: one threshold over all matrices on |w| / RMS of its matrix's surviving weights.
  Raw magnitudes would prune layers by their scale (the default GPT's residual projections are
  initialised ~3x smaller, and scales drift in training), not by importance within the layer;
  dividing by the RMS makes the ranking scale-free, while a layer whose weights are unusually
  spread (heavy-tailed) still gives up more. Ranking within each layer instead would just be
  `magnitude` again.
- `random`: per matrix, a seeded random choice: the baseline every method must beat.
- `structured`: whole units, by the L2 norm of all the weights a unit owns. The units are the
  model's (`LanguageModel.prunable_units`: GPT heads and MLP neurons, LSTM/GRU hidden units,
  the MLP model's neurons), so a new family is pruned by structure once it names its own; a
  weight no unit set names loses whole rows. A unit owns its rows and the columns that read
  it, so it is gone even with `bias` on. Every unit set (one layer's heads, ...) loses about
  the same fraction of its units, and as many units go as bring the zeros over all prunable
  weights closest to `sparsity`.

Fine-tuning after pruning takes the training step itself (`core.train_step`), not a loop of
its own.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from core.dataset import TokenDataset
from core.evaluate import EvalResult, batch_sums, eval_mode
from core.optim import build_optimizer, lr_at, set_lr
from core.prune_units import structured_keeps
from core.session import OptimConfig, field_doc
from core.train_step import NonFiniteError, optimizer_step
from core.values import SWEEP_LEVELS

METHODS: tuple[str, ...] = tuple(field_doc("compress.method")["choices"])  # the schema's

_RNN_WEIGHT = re.compile(r"weight_(ih|hh)_l\d+(_reverse)?")


# ----------------------------------------------------------------------------- prunable weights

@dataclass
class Prunable:
    """One prunable weight matrix: attribute `attr` of `module`, `name` in the dense state_dict."""

    name: str
    module: nn.Module
    attr: str

    @property
    def param(self) -> nn.Parameter:
        """The trained Parameter (`weight_orig` once masked)."""
        params = self.module._parameters
        return params.get(self.attr + "_orig", params.get(self.attr))

    @property
    def mask(self) -> Tensor | None:
        return getattr(self.module, self.attr + "_mask", None)

    def weight(self) -> Tensor:
        """The weight as the next forward will use it (masked), detached."""
        mask = self.mask
        return self.param.detach() if mask is None else self.param.detach() * mask

    def keep_only(self, keep: Tensor) -> None:
        """Zero the entries where `keep` is 0, on top of any earlier mask (pruned stays pruned)."""
        mask = self.mask
        if mask is None:
            prune.custom_from_mask(self.module, self.attr, keep)
        else:
            mask.mul_(keep.to(mask.dtype))
            setattr(self.module, self.attr, self.weight())


def prunable_weights(model: nn.Module) -> list[Prunable]:
    """Linear weights and LSTM/GRU `weight_ih_l*`/`weight_hh_l*`, minus any tied to an embedding."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    found = []
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            attrs = ["weight"]
        elif isinstance(module, nn.RNNBase):
            attrs = [a for a in module._flat_weights_names if _RNN_WEIGHT.fullmatch(a)]
        else:
            continue
        for attr in attrs:
            w = Prunable(f"{module_name}.{attr}" if module_name else attr, module, attr)
            if id(w.param) not in embeddings:
                found.append(w)
    return found


# ----------------------------------------------------------------------------- pruning

def prune_model(model: nn.Module, method: str, sparsity: float, seed: int = 0,
                inplace: bool = False) -> nn.Module:
    """A copy of `model` (the model itself if `inplace`) with `sparsity` of its prunable weights
    zeroed by `method` (see the module docstring). The copy shares nothing with the original."""
    target = model if inplace else copy_model(model)
    update_masks(target, method, sparsity, seed)
    return target


def attach_masks(model: nn.Module) -> None:
    """Give every prunable weight a mask of ones (no-op where one exists): the shape of a
    pruned model's state_dict, so a checkpoint saved mid-way through gradual pruning loads."""
    with torch.no_grad():
        for w in prunable_weights(model):
            if w.mask is None:
                w.keep_only(torch.ones_like(w.param))


def is_masked(model: nn.Module) -> bool:
    return any(w.mask is not None for w in prunable_weights(model))


def update_masks(model: nn.Module, method: str, sparsity: float, seed: int = 0) -> None:
    """Prune `model` in place up to `sparsity`, keeping every weight already pruned pruned.

    Made for gradual pruning: call it every few training steps with `cubic_sparsity(step, ...)`.
    The optimizer needs no rebuilding (the first call keeps the Parameter, as `weight_orig`).
    With `random`, one seed gives nested masks: each level's choice contains the last one's.
    """
    if method not in METHODS:
        raise ValueError(f"unknown pruning method {method!r}; expected one of {', '.join(METHODS)}")
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1] (got {sparsity})")
    weights = prunable_weights(model)
    if not weights:
        return
    with torch.no_grad():
        if method == "structured":
            keeps = structured_keeps(model, weights, sparsity)
        elif method == "global":
            keeps = _global_keeps(weights, sparsity)
        else:
            keeps = [_keep_above_kth(s, round(sparsity * s.numel()))
                     for s in _scores(weights, method, seed)]
        for w, keep in zip(weights, keeps, strict=True):
            w.keep_only(keep)


def _scores(weights: list[Prunable], method: str, seed: int) -> list[Tensor]:
    """Per weight, a score per entry (lowest pruned first); already pruned entries score -1."""
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for w in weights:
        weight = w.weight()
        if method == "random":
            score = torch.rand(weight.shape, generator=generator).to(weight.device)
        elif method == "global":
            score = weight.abs() / _rms(weight if w.mask is None else weight[w.mask > 0])
        else:
            score = weight.abs()
        scores.append(score if w.mask is None else score.masked_fill(w.mask == 0, -1.0))
    return scores


def _rms(x: Tensor) -> Tensor:
    return x.float().square().mean().sqrt().clamp_min(1e-12) if x.numel() else x.new_ones(())


def _keep_above_kth(scores: Tensor, k: int) -> Tensor:
    """A 0/1 mask that zeroes the `k` lowest scores (all ties at the k-th, too)."""
    if k <= 0:
        return torch.ones_like(scores)
    threshold = scores.flatten().kthvalue(min(k, scores.numel())).values
    return (scores > threshold).to(scores.dtype)


def _global_keeps(weights: list[Prunable], sparsity: float) -> list[Tensor]:
    """One threshold over every matrix's RMS-normalised magnitudes."""
    scores = _scores(weights, "global", seed=0)
    flat = torch.cat([s.flatten().to(scores[0].device) for s in scores])
    keep = _keep_above_kth(flat, round(sparsity * flat.numel()))
    return [k.view_as(s).to(s.device) for k, s in
            zip(keep.split([s.numel() for s in scores]), scores, strict=True)]


# ----------------------------------------------------------------------------- masks as state

def copy_model(model: nn.Module) -> nn.Module:
    """`copy.deepcopy` that also works on a pruned model that has run a forward.

    (torch refuses to deepcopy the non-leaf `weight = weight_orig * weight_mask` a forward
    leaves behind, so it is swapped for a detached, equal tensor first; the next forward
    recomputes it as always.)
    """
    with torch.no_grad():
        for module, hook in _prune_hooks(model):
            setattr(module, hook._tensor_name, hook.apply_mask(module).detach())
    return copy.deepcopy(model)


def _prune_hooks(model: nn.Module) -> list[tuple[nn.Module, prune.BasePruningMethod]]:
    return [(module, hook) for module in model.modules()
            for hook in module._forward_pre_hooks.values()
            if isinstance(hook, prune.BasePruningMethod)]


def fold_masks(model: nn.Module) -> nn.Module:
    """Make the pruning permanent, in place: plain weights with the zeros baked in.

    Afterwards the state_dict has no `weight_orig`/`weight_mask` (so a saved model is not twice
    the size and loads into a fresh dense model), and nothing keeps the zeros at zero any more.
    """
    for module, hook in _prune_hooks(model):
        prune.remove(module, hook._tensor_name)
    return model


# ----------------------------------------------------------------------------- reporting

@dataclass
class LayerSparsity:
    name: str
    total: int
    zeros: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.total if self.total else 0.0


@dataclass
class SparsityReport:
    """Zeros per prunable matrix, over all of them, and over the whole model."""

    layers: list[LayerSparsity]
    prunable: int  # prunable weights
    prunable_zeros: int
    params: int  # every parameter, a tied one counted once
    nonzero_params: int

    @property
    def sparsity(self) -> float:
        """Zeros over the prunable weights: the figure `sparsity` asks for."""
        return self.prunable_zeros / self.prunable if self.prunable else 0.0

    @property
    def overall_sparsity(self) -> float:
        """Zeros over every parameter, embeddings, norms and biases included."""
        return 1.0 - self.nonzero_params / self.params if self.params else 0.0


def sparsity_report(model: nn.Module) -> SparsityReport:
    """How sparse `model` is now (zeros in its effective weights, masked or not)."""
    layers = []
    for w in prunable_weights(model):
        weight = w.weight()
        layers.append(LayerSparsity(w.name, weight.numel(), int((weight == 0).sum())))
    params = nonzero = 0
    for name, p in model.named_parameters():
        module_name, _, attr = name.rpartition(".")
        mask = getattr(model.get_submodule(module_name), attr.removesuffix("_orig") + "_mask",
                       None) if attr.endswith("_orig") else None
        value = p.detach() if mask is None else p.detach() * mask
        params += value.numel()
        nonzero += int(value.count_nonzero())
    return SparsityReport(layers, sum(x.total for x in layers), sum(x.zeros for x in layers),
                          params, nonzero)


# ----------------------------------------------------------------------------- fine-tuning

def finetune_lr(cfg: OptimConfig) -> float:
    """The fine-tuning learning rate: where training's schedule ended, and at least lr / 10.

    A fresh optimizer at the peak rate moves every surviving weight by about `lr` in its first
    steps (Adam's moments start cold, and there is no warmup in a few dozen steps) and can undo
    the training it should repair; continuing at the schedule's floor is the usual recipe.
    The lr / 10 floor keeps a `min_lr` of 0 from making fine-tuning a no-op.
    """
    end_of_schedule = lr_at(cfg.warmup_steps, cfg, max_steps=0)
    return max(end_of_schedule, cfg.lr / 10)


def finetune(model: nn.Module, dataset: TokenDataset, steps: int, optim_cfg: OptimConfig,
             batch_size: int, seed: int, device: str = "cpu",
             on_step: Callable[[int, float], None] | None = None,
             lr: float | None = None) -> list[float]:
    """Train `model` (moved to `device`, in place) for `steps` steps; the training losses.

    The optimizer is `optim_cfg`'s at a constant `lr` (default `finetune_lr(optim_cfg)`), with
    its gradient clipping, on training batches drawn from a generator seeded with `seed`.
    Masks keep pruned weights at zero throughout. `on_step(step, loss)` follows every step.
    """
    model.to(device)
    optimizer = build_optimizer(model, optim_cfg, torch.device(device).type)
    set_lr(optimizer, finetune_lr(optim_cfg) if lr is None else lr)
    optimizer.zero_grad(set_to_none=True)  # the step starts from no gradient, as in training
    generator = torch.Generator().manual_seed(seed)

    def next_batch() -> tuple[Tensor, Tensor]:
        x, y = dataset.get_batch("train", batch_size, model.context, generator)
        return x.to(device), y.to(device)

    was_training = model.training
    model.train()
    losses = []
    try:
        for step in range(steps):
            loss, _ = optimizer_step(model, optimizer, next_batch, step=step + 1,
                                     grad_clip=optim_cfg.grad_clip)
            losses.append(loss)
            if on_step is not None:
                on_step(step, loss)
    except NonFiniteError as e:
        raise NonFiniteError(f"fine-tuning: {e}") from None
    finally:
        model.train(was_training)
    return losses


# ----------------------------------------------------------------------------- gradual pruning

def cubic_sparsity(step: int, s_initial: float, s_final: float, start_step: int,
                   end_step: int) -> float:
    """Zhu & Gupta's (2017) schedule: s_f + (s_i - s_f) * (1 - (t - t0) / (n dt))**3.

    Prunes fast while there are many redundant weights and slowly near the end; s_initial
    before `start_step`, s_final from `end_step` on.
    """
    if step <= start_step:
        return s_initial
    if step >= end_step:
        return s_final
    progress = (step - start_step) / (end_step - start_step)
    return s_final + (s_initial - s_final) * (1.0 - progress) ** 3


# ----------------------------------------------------------------------------- evaluation

@dataclass
class FixedEvalSet:
    """Evaluation batches drawn once, `[batches, batch_size, context]`, so that every model
    compared on it sees the same tokens. They are the batches `core.evaluate.evaluate` draws
    with the same seed, so the figures agree with it."""

    x: Tensor
    y: Tensor
    split: str = "val"

    @classmethod
    def draw(cls, dataset: TokenDataset, context: int, batches: int, batch_size: int,
             seed: int, split: str = "val") -> FixedEvalSet:
        if batches < 1:
            raise ValueError(f"FixedEvalSet needs batches >= 1 (got {batches})")
        generator = torch.Generator().manual_seed(seed)
        pairs = [dataset.get_batch(split, batch_size, context, generator) for _ in range(batches)]
        return cls(torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs]), split)

    def to(self, device: str | torch.device) -> FixedEvalSet:
        return FixedEvalSet(self.x.to(device), self.y.to(device), self.split)


def evaluate_fixed(model: nn.Module, evalset: FixedEvalSet, auc: bool = False) -> EvalResult:
    """`core.evaluate.evaluate`'s figures on the precomputed batches (on the evalset's device),
    with the macro ROC AUC when `auc` (the before/after tables; a sweep point needs none)."""
    from core.report import AucScores

    tokens = evalset.y.numel()
    scores = AucScores(tokens, model.vocab_size) if auc else None
    sums = []
    with eval_mode(model):
        for x, y in zip(evalset.x, evalset.y, strict=True):
            logits = model(x).float()
            sums.append(batch_sums(logits, y))
            if scores is not None:
                scores.add(logits, y)
    loss, top1, top5 = (torch.stack(sums).cpu().double().sum(0) / tokens).tolist()
    return EvalResult(evalset.split, loss, math.exp(loss), top1, top5, tokens,
                      None if scores is None else scores.macro_auc()[0])


@dataclass
class SweepPoint:
    sparsity: float  # asked for
    real_sparsity: float  # zeros over the prunable weights, as measured
    loss: float
    perplexity: float
    top1: float
    top5: float


def sweep(model: nn.Module, dataset: TokenDataset, levels: Sequence[float] = SWEEP_LEVELS,
          method: str = "magnitude", eval_batches: int = 8, batch_size: int = 32, seed: int = 0,
          device: str = "cpu", split: str = "val",
          on_point: Callable[[SweepPoint], None] | None = None,
          evalset: FixedEvalSet | None = None) -> list[SweepPoint]:
    """Loss and accuracy against sparsity: each level prunes a fresh copy of `model` (left
    untouched, already on `device`) and evaluates it on one fixed sample of `split`.

    `on_point` receives each point as it is measured, so a curve can be drawn as it grows.
    A caller that already holds a fixed sample passes it as `evalset` (then `eval_batches`,
    `batch_size`, `split` and `device` are not used).
    """
    if evalset is None:
        evalset = FixedEvalSet.draw(dataset, model.context, eval_batches, batch_size, seed,
                                    split).to(device)
    points = []
    for level in levels:
        pruned = prune_model(model, method, level, seed=seed)
        result = evaluate_fixed(pruned, evalset)
        point = SweepPoint(level, sparsity_report(pruned).sparsity, result.loss,
                           result.perplexity, result.top1, result.top5)
        points.append(point)
        if on_point is not None:
            on_point(point)
    return points
