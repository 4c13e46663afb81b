"""Noticing a run that has collapsed, so it does not pass for a slow one.

A language model that predicts every token with the same probability has a loss of exactly
ln(vocab): 8.9872 for 8000 words. A run can get stuck there for good: weight decay (or a
learning rate far too high) drives the weights to zero, the output becomes uniform, and the
gradients vanish with it (~1e-16, denormal floats that also make a CPU crawl). An untrained
model starts near ln(vocab) too, but its gradients are healthy (~1), which is what tells the
two apart. So a run is flagged when its val loss sits within `loss_margin` of ln(vocab) *and*
the gradient norm is below `grad_floor`, for `patience` evaluations in a row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class CollapseWatch:
    vocab_size: int
    patience: int = 2  # consecutive evaluations
    loss_margin: float = 0.02  # a fraction of ln(vocab_size)
    grad_floor: float = 1e-3  # healthy runs are at ~0.1-10; collapsed ones at 1e-16
    streak: int = 0
    flagged: bool = False  # warned for the current streak already

    def collapsed(self, val_loss: float, grad_norm: float) -> bool:
        """Whether one evaluation looks collapsed (uniform predictions, no gradient)."""
        if self.vocab_size < 2:
            return False
        uniform = math.log(self.vocab_size)
        return val_loss >= (1 - self.loss_margin) * uniform and grad_norm < self.grad_floor

    def observe(self, step: int, val_loss: float, grad_norm: float | None) -> str | None:
        """Record one evaluation; the warning's text when the run has just been found
        collapsed (once per streak: a run that recovers and collapses again is told again)."""
        if grad_norm is None:  # the evaluation before the first step
            return None
        if not self.collapsed(val_loss, grad_norm):
            self.streak, self.flagged = 0, False
            return None
        self.streak += 1
        if self.streak < self.patience or self.flagged:
            return None
        self.flagged = True
        return (f"step {step}: collapsed: val loss {val_loss:.4f} = ln(vocab "
                f"{self.vocab_size}), uniform guessing, and gradient norm {grad_norm:.1e} for "
                f"{self.streak} evals; it will not learn (optim.weight_decay or optim.lr too "
                "high?)")
