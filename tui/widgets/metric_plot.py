"""A plotext line plot of training curves, redrawn only when asked (at a bounded rate)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from textual.color import Color, ColorParseError
from textual_plotext import PlotextPlot

from tui.smoothing import downsample


@dataclass
class Series:
    label: str
    steps: list[float]
    values: list[float]
    color: str  # a theme variable name, e.g. "plot-train"
    marker: str = "braille"


@dataclass
class PlotData:
    series: list[Series] = field(default_factory=list)
    markers: list[float] = field(default_factory=list)  # steps of vertical lines
    log_y: bool = False


class MetricPlot(PlotextPlot):
    """Call `show(PlotData)`; the plot keeps at most ~2 points per column of each series."""

    def __init__(self, title: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.data = PlotData()
        self._version = 0
        self._cache: tuple[tuple, object] | None = None

    def show(self, data: PlotData) -> None:
        """Plot `data`; nothing is redrawn if it is what the plot shows already."""
        if data == self.data and self._version:
            return
        self.data = data
        self._version += 1
        self.refresh()

    def _get_plotext_theme_name(self, app_theme_name: str) -> str:
        """A theme of the terminal's own colours stays in them: plotext's clear theme."""
        theme = self.app.get_theme(app_theme_name)
        if self.theme == "auto" and theme is not None and theme.ansi:
            return "textual-clear"
        return super()._get_plotext_theme_name(app_theme_name)

    def _rgb(self, variable: str) -> tuple[int, int, int] | str:
        """A theme colour as plotext takes it: RGB, or a terminal colour name for an ANSI
        theme (so the user's palette applies)."""
        value = self.app.theme_variables.get(variable) or self.app.theme_variables["primary"]
        if value.startswith("ansi_"):
            name = value[len("ansi_"):]
            if name.startswith("bright_"):
                return name[len("bright_"):] + "+"
            return name if name != "default" else "default"
        try:
            return Color.parse(value).rgb
        except ColorParseError:
            return "default"

    def render(self):
        key = (self._version, self.size, self.app.theme)  # redrawn only when one changes
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        result = self._render_plot()
        self._cache = (key, result)
        return result

    def _render_plot(self):
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        width = max(10, self.size.width)
        log_y = self.data.log_y
        drawn = False
        for s in self.data.series:
            xs, ys = s.steps, s.values
            if log_y:
                pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if y > 0 and math.isfinite(y)]
            else:
                pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]
            if not pairs:
                continue
            xs, ys = downsample([p[0] for p in pairs], [p[1] for p in pairs], 2 * width)
            plt.plot(xs, ys, marker=s.marker, color=self._rgb(s.color))
            drawn = True
        if log_y and drawn:
            plt.yscale("log")
        for step in self.data.markers:
            plt.vline(step, self._rgb("plot-marker"))
        if not drawn:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
            plt.xticks([])
            plt.yticks([])
        return super().render()
