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
    scatter: bool = False  # points, not a line (a field against the metric)


@dataclass
class PlotData:
    series: list[Series] = field(default_factory=list)
    markers: list[float] = field(default_factory=list)  # steps of vertical lines
    log_y: bool = False
    log_x: bool = False
    title: str = ""  # the plot's title for this data ("" keeps the one it was made with)


def nice_ticks(lo: float, hi: float, most: int = 5) -> list[float]:
    """At most `most` round ticks (multiples of 1, 2, 2.5 or 5 x 10^k) between lo and hi."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(1, most - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step) * step
    if first > hi:  # (no round number in between: the ends)
        return [lo, hi]
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def tick_label(x: float) -> str:
    """A whole step or percent as a short label: 250, 1500, 12k, 1.2M."""
    if abs(x) >= 1e6:
        return f"{x / 1e6:g}M"
    if abs(x) >= 1e4:
        return f"{x / 1e3:g}k"
    return f"{x:g}"


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

    def _x_values(self):
        for s in self.data.series:
            yield from s.steps
        yield from self.data.markers

    def _render_plot(self):
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.data.title or self.title)
        width = max(10, self.size.width)
        log_y = self.data.log_y
        drawn = False
        whole_x: list[float] = []
        for s in self.data.series:
            xs, ys = s.steps, s.values
            if log_y:
                pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if y > 0 and math.isfinite(y)]
            else:
                pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]
            if not pairs:
                continue
            xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
            if not s.scatter:  # (each point of a scatter is a trial of its own)
                xs, ys = downsample(xs, ys, 2 * width)
            draw = plt.scatter if s.scatter else plt.plot
            draw(xs, ys, marker=s.marker, color=self._rgb(s.color))
            whole_x += [min(xs), max(xs)]
            drawn = True
        if log_y and drawn:
            plt.yscale("log")
        if self.data.log_x and drawn:
            plt.xscale("log")
        xs_all = [*whole_x, *self.data.markers]
        if drawn and all(float(x).is_integer() for x in self._x_values()):
            # Steps and percents are whole numbers: round ticks, not plotext's "23.8 47.5".
            lo, hi = min(xs_all), max(xs_all)
            ticks = nice_ticks(lo, hi, most=max(2, min(6, width // 7)))
            plt.xticks(ticks, [tick_label(t) for t in ticks])
        for step in self.data.markers:
            plt.vline(step, self._rgb("plot-marker"))
        if not drawn:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
            plt.xticks([])
            plt.yticks([])
        return super().render()
