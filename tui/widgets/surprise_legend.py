"""The surprise heatmap's colour scale and its legend.

Each token of the Dataset pane's preview can be coloured by its loss (nats) under the loaded
model. The scale is relative to the span's mean loss, so that the middle colour means "about as
surprising as the average token here": HEAT_LEVELS buckets of equal width `step`, with
`step` = 0.4 x the mean (to one significant digit), so the buckets are about [0, .4m),
[.4m, .8m), [.8m, 1.2m), [1.2m, 1.6m) and 1.6m and more. The colours are the theme
variables `heat-0` .. `heat-4`, a diverging scale: cool (easier than the average token) to
warm (harder).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from textual.content import Content
from textual.widget import Widget

HEAT_LEVELS = 5
STEP_OF_MEAN = 0.4  # a bucket is this fraction of the mean loss wide
DEFAULT_STEP = 0.5  # nats: the step when there is no mean (a text of one token)


def heat_style(level: int) -> str:
    """The Content style of a token in bucket `level` (a theme variable as background)."""
    return f"on $heat-{level}"


@dataclass(frozen=True)
class HeatScale:
    """Loss buckets of width `step` nats; the last one is open ("step x (levels-1) and up")."""

    step: float
    levels: int = HEAT_LEVELS

    @classmethod
    def for_mean(cls, mean_loss: float, levels: int = HEAT_LEVELS) -> HeatScale:
        """The scale that puts `mean_loss` in the middle bucket."""
        if not math.isfinite(mean_loss) or mean_loss <= 0:
            return cls(DEFAULT_STEP, levels)
        raw = mean_loss * 2 / levels  # (the middle bucket spans the mean, 0.8m .. 1.2m)
        step = round(raw, -math.floor(math.log10(raw)))  # one significant digit: a legend
        return cls(step, levels)                         # of round numbers

    def bucket(self, loss: float) -> int | None:
        """The colour level of a loss (0: least surprising); None for NaN (the first token,
        which nothing predicts)."""
        if math.isnan(loss):
            return None
        if loss <= 0:
            return 0
        if math.isinf(loss):
            return self.levels - 1
        return min(self.levels - 1, int(loss / self.step + 1e-9))

    @property
    def edges(self) -> list[float]:
        """The lower bound (nats) of each bucket."""
        return [i * self.step for i in range(self.levels)]

    def edge_text(self, value: float) -> str:
        decimals = max(1, -math.floor(math.log10(self.step)))
        return f"{value:.{decimals}f}"


def run_name(source: str) -> str:
    """A loaded model's short name: `session/run-id` of its run folder (or the file name of a
    compressed model)."""
    path = Path(source)
    if path.parent.name:
        return f"{path.parent.name}/{path.name}"
    return path.name or source


def mean_figures(mean_loss: float) -> str:
    """A mean loss as nats, bits per token and perplexity."""
    if not math.isfinite(mean_loss):
        return "mean: no token scored"
    ppl = math.exp(mean_loss) if mean_loss < 700 else math.inf
    return f"mean {mean_loss:.3f} nats, {mean_loss / math.log(2):.2f} bits/tok, ppl {ppl:.2f}"


class SurpriseLegend(Widget):
    """Above the preview while the heatmap is on: what scored it and the colour scale, or one
    line saying what the heatmap waits for (or why it failed)."""

    DEFAULT_CSS = """
    SurpriseLegend {
        height: auto;
        margin-top: 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale: HeatScale | None = None
        self.mean_loss = math.nan
        self.source = ""
        self.step: int | None = None
        self.message = ""
        self.error = False
        self.key = "h"  # the key that turns the heatmap off, as the footer shows it

    def show_scale(self, scale: HeatScale, mean_loss: float, source: str,
                   step: int | None = None) -> None:
        self.scale, self.mean_loss, self.source, self.step = scale, mean_loss, source, step
        self.message, self.error = "", False
        self.refresh(layout=True)

    def show_message(self, message: str, error: bool = False) -> None:
        """One line instead of the scale: what the heatmap waits for, or why it failed."""
        self.scale, self.message, self.error = None, message, error
        self.refresh(layout=True)

    def render(self) -> Content:
        if self.scale is None:
            if self.error:
                return Content.assemble(("✗ surprise: ", "$error bold"),
                                        (self.message, "$error"))
            return Content.assemble(("surprise: ", "$text-muted"), self.message)
        scale = self.scale
        at = f" (step {self.step})" if self.step is not None else ""
        parts: list[str | tuple[str, str]] = [
            ("surprise", "bold"), f" = loss of each token under {run_name(self.source)}{at}",
            (f" · {self.key}: off", "$text-muted"), "\n"]
        for level, edge in enumerate(scale.edges):
            last = level == scale.levels - 1
            parts += [("  ", heat_style(level)),
                      f"{scale.edge_text(edge)}{'+' if last else ''} "]
        parts += ["nats  ", mean_figures(self.mean_loss)]
        return Content.assemble(*parts)
