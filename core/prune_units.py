"""Structured pruning: which whole units (attention heads, neurons, recurrent hidden units)
go, so that every layer loses about the same fraction of its units and the zeros over all
prunable weights come as close to the asked sparsity as whole units allow.

The units are the model's own (`LanguageModel.prunable_units`); core/prune.py applies the
masks computed here. A weight is a `core.prune.Prunable` (name, param, masked weight).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from core.models import LanguageModel

if TYPE_CHECKING:
    from core.prune import Prunable


@dataclass
class _Units:
    """The units of one layer (heads, neurons, hidden units) and the weight slices each owns.

    `parts` holds (weight, dim, unit): index i along `dim` of the weight belongs to unit
    `unit[i]`. Removing a unit zeroes all of its slices.
    """

    n: int
    parts: list[tuple[Prunable, int, Tensor]]

    def scores(self) -> Tensor:
        """The L2 norm of each unit's weights (0 for a unit already removed)."""
        squares = torch.zeros(self.n, dtype=torch.float64)
        for w, dim, unit in self.parts:
            along = w.weight().double().square().sum(dim=1 - dim).cpu()
            squares.index_add_(0, unit, along)
        return squares.sqrt()


def structured_keeps(model: nn.Module, weights: list[Prunable], sparsity: float) -> list[Tensor]:
    """Remove units, weakest first within each set, so that every set loses about the same
    fraction of its units, until the zeros over all prunable weights are as close to `sparsity`
    as whole units allow.

    The j-th weakest of a set's n units has the key (j + 0.5) / n; removing units in the order
    of their keys keeps the sets' fractions level, one unit at a time. How many to remove is
    found by bisection, as units owning shared weights (a recurrent unit's row and column in
    `weight_hh`) make the zeros per unit uneven.
    """
    unit_sets = _unit_sets(model, weights)
    orders = [u.scores().argsort(stable=True) for u in unit_sets]
    keys = torch.cat([(torch.arange(u.n) + 0.5) / u.n for u in unit_sets])
    owner = torch.cat([torch.full((u.n,), i) for i, u in enumerate(unit_sets)])
    owner = owner[keys.argsort(stable=True)]  # the set of the 1st, 2nd, ... unit to remove
    total = sum(w.param.numel() for w in weights)

    def keeps_at(m: int) -> list[Tensor]:
        """Boolean masks with the first `m` units removed."""
        counts = torch.bincount(owner[:m], minlength=len(unit_sets)).tolist()
        keeps = {w.name: torch.ones_like(w.param, dtype=torch.bool) for w in weights}
        for units, order, k in zip(unit_sets, orders, counts, strict=True):
            dead = torch.zeros(units.n, dtype=torch.bool)
            dead[order[:k]] = True
            for w, dim, unit in units.parts:
                alive = ~dead[unit].to(w.param.device)
                keeps[w.name] &= alive[:, None] if dim == 0 else alive[None, :]
        return [keeps[w.name] for w in weights]

    nonzero = [w.weight() != 0 for w in weights]

    def real(m: int) -> float:
        kept = sum(int((k & nz).sum()) for k, nz in zip(keeps_at(m), nonzero, strict=True))
        return 1.0 - kept / total

    lo, hi = 0, len(owner)  # the fewest units that reach `sparsity` lie in (lo, hi]
    if real(lo) >= sparsity:
        hi = lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if real(mid) >= sparsity:
            hi = mid
        else:
            lo = mid
    best = min((lo, hi), key=lambda m: abs(real(m) - sparsity))
    return [k.to(w.param.dtype) for k, w in zip(keeps_at(best), weights, strict=True)]


def _unit_sets(model: nn.Module, weights: list[Prunable]) -> list[_Units]:
    """The unit sets the model names (`LanguageModel.prunable_units`), over the weights that
    are prunable; every prunable weight no set names loses whole rows."""
    by_name = {w.name: w for w in weights}
    named = model.prunable_units() if isinstance(model, LanguageModel) else []
    unit_sets = []
    for units in named:
        owned = [(by_name[name], dim, unit) for name, dim, unit in units.parts if name in by_name]
        if owned:
            unit_sets.append(_Units(units.n, owned))
    covered = {w.name for units in unit_sets for w, _, _ in units.parts}
    for w in weights:
        if w.name not in covered:
            unit_sets.append(_Units(w.param.shape[0], [(w, 0, torch.arange(w.param.shape[0]))]))
    return unit_sets
