"""The Train pane's second line: live hyperparameters and the plot toggles."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from tui.nudge import format_number


class HparamLine(Widget):
    hparams: reactive[dict[str, float]] = reactive(dict, always_update=True)
    current_lr: reactive[float | None] = reactive(None)
    smoothing: reactive[bool] = reactive(True)
    log_scale: reactive[bool] = reactive(False)
    keys: reactive[tuple[str, str]] = reactive(("a", "l"))  # smoothing, log scale

    LABELS = {"optim.lr": "lr", "optim.weight_decay": "wd", "optim.grad_clip": "clip",
              "train.eval_interval": "eval"}

    def render(self) -> Content:
        parts: list[str | tuple[str, str] | Content] = []
        for name, label in self.LABELS.items():
            if name in self.hparams:
                parts.append(Content.assemble((f"{label} ", "$text-muted"),
                                              (format_number(self.hparams[name]), "bold"), "  "))
        if self.current_lr is not None:
            parts.append(Content.assemble(("now ", "$text-muted"),
                                          f"{self.current_lr:.2e}", "  "))
        smooth_key, log_key = self.keys
        parts.append(Content.assemble(
            ("│ ", "$text-muted"), (smooth_key, "$accent"), (" smooth ", "$text-muted"),
            ("on" if self.smoothing else "off", "bold"),
            ("  ", "$text-muted"), (log_key, "$accent"), (" log ", "$text-muted"),
            ("on" if self.log_scale else "off", "bold")))
        return Content.assemble(*parts)
