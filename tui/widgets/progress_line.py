"""The Train pane's progress line: state, step/max with a bar, tokens/s, MFU, ETA."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from core import messages as msg
from core.estimate import human_count


def format_eta(seconds: float) -> str:
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressLine(Widget):
    state: reactive[str] = reactive("idle")
    metrics: reactive[msg.StepMetrics | None] = reactive(None, always_update=True)
    max_steps: reactive[int] = reactive(0)
    # What a training waits for while the engine does workbench work ("" when it trains):
    # shown instead of the speed and the ETA, which mean nothing meanwhile.
    waiting: reactive[str] = reactive("")

    ICONS = {"running": "▶", "paused": "⏸", "preparing": "…", "stopping": "■",
             "stopped": "■", "finished": "✓", "failed": "✗", "lost": "?", "idle": "·"}

    def render(self) -> Content:
        icon = self.ICONS.get(self.state, "·")
        m = self.metrics
        head = Content.assemble((f"{icon} {self.state:<9}", "bold"))
        if m is None and self.waiting:
            return Content.assemble(head, (f"training waits: {self.waiting}", "$warning"))
        if m is None:
            return Content.assemble(head, ("step 0", "$text-muted"))
        total = max(self.max_steps or m.max_steps, 1)
        frac = min(1.0, m.step / total)
        width = 12
        filled = int(round(frac * width))
        bar = Content.assemble(("━" * filled, "$accent"), ("━" * (width - filled), "$panel"))
        if self.waiting:
            return Content.assemble(head, f"{m.step}/{total} ", bar, f" {frac:4.0%}",
                                    (f"  training waits: {self.waiting}", "$warning"))
        rate = m.step / m.elapsed if m.elapsed > 0 else 0.0
        eta = (total - m.step) / rate if rate > 0 else float("inf")
        return Content.assemble(
            head, f"{m.step}/{total} ", bar, f" {frac:4.0%}",
            f"  {human_count(m.tokens_per_s)} tok/s",
            f"  MFU {m.mfu:.1%}", f"  ETA {format_eta(eta)}")
