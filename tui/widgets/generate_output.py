"""One output column of the Generate pane: a header line and the streamed text.

The header names the model and shows the figures of the generation (tokens so far, tokens/s,
and whether it is under way, done or stopped); below it the prompt is shown dimmed and the
generated text after it, wrapped by cell width (a CJK character takes two cells), scrolling
to follow the end while new text comes in unless the user scrolled up to read.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Static

from core.estimate import human_count
from core.text import visible

# state -> (mark, style) in the header
STATES = {
    "idle": ("", "$text-muted"),
    "waiting": ("…", "$text-muted"),
    "generating": ("▶", "$accent"),
    "stopping": ("■", "$warning"),
    "done": ("✓", "$success"),
    "stopped": ("■", "$warning"),
    "failed": ("✗", "$error"),
}


class GenerateColumn(Vertical):
    """Shows one model's generation; fed plain values (`begin`, `append`, `finish`)."""

    def __init__(self, model: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.label = ""  # what the model is, e.g. "magnitude 50%" for the compressed one
        self.prompt = ""
        self.text = ""  # the generated text (without the prompt)
        self.tokens = 0
        self.tokens_per_s = 0.0
        self.state = "idle"
        self.message = ""  # why it failed
        self.hint = ""  # shown while nothing was generated (no model yet, which keys ...)
        self.max_tokens = 0
        self.narrow = False  # the figures on a line of their own, under the name

    def compose(self) -> ComposeResult:
        yield Static(self._header(), classes="generate-header", markup=False)
        with VerticalScroll(classes="generate-scroll"):
            yield Static(self._body(), classes="generate-body", markup=False)

    # ------------------------------------------------------------------ feeding

    def begin(self, prompt: str, max_tokens: int) -> None:
        """A new generation starts (nothing from it yet)."""
        self.prompt = prompt
        self.text = ""
        self.tokens = 0
        self.tokens_per_s = 0.0
        self.max_tokens = max_tokens
        self.message = ""
        self.state = "waiting"
        self._show(follow=True)

    def append(self, piece: str, tokens: int, tokens_per_s: float) -> None:
        self.text += piece
        self.tokens = tokens
        self.tokens_per_s = tokens_per_s
        if self.state in ("waiting", "failed", "idle"):
            self.state = "generating"
            self.message = ""
        self._show(follow=self._at_end())

    def finish(self, state: str, message: str = "") -> None:
        """`state`: done, stopped or failed (with a `message` saying why)."""
        self.state = state
        self.message = message
        self._show(follow=self._at_end())

    def clear(self) -> None:
        """Forget the text shown (it came from a model no longer loaded): back to the hint."""
        self.prompt = self.text = self.message = ""
        self.tokens, self.tokens_per_s, self.max_tokens = 0, 0.0, 0
        self.state = "idle"
        self._show(follow=False)

    def set_state(self, state: str) -> None:
        self.state = state
        self._show(follow=False)

    def show_hint(self, message: str) -> None:
        """A line shown in place of text (no model yet, ...) while nothing was generated."""
        self.hint = message
        self._show(follow=False)

    def set_narrow(self, narrow: bool) -> None:
        self.narrow = narrow
        self._show(follow=False)

    def set_label(self, label: str) -> None:
        self.label = label
        self._show(follow=False)

    # ------------------------------------------------------------------ drawing

    def _header(self) -> Content:
        mark, style = STATES.get(self.state, ("", "$text-muted"))
        name = self.model + (f" ({self.label})" if self.label else "")
        parts: list[Any] = [(f"{mark} " if mark else "", style), (name, "bold")]
        figures: list[Any] = []
        if self.tokens or self.state in ("generating", "stopping", "done", "stopped"):
            of = f"/{self.max_tokens}" if self.max_tokens and self.state in (
                "generating", "stopping") else ""
            figures.append(f"{self.tokens}{of} tok · {human_count(self.tokens_per_s)} tok/s")
        if self.state != "idle":
            figures.append((self.state, style))
        if figures:
            parts.append("\n" if self.narrow else " · ")
            for i, part in enumerate(figures):
                parts += [" · "] * (i > 0) + [part]
        return Content.assemble(*parts)

    def _body(self) -> Content:
        if self.state == "idle":
            return Content.assemble((self.hint, "$text-muted"))
        # (token strings come from a tokenizer file: control characters shown, not obeyed)
        parts: list[Any] = [(visible(self.prompt, keep="\n\t"), "$text-muted"),
                            visible(self.text, keep="\n\t")]
        if self.state == "failed" and self.message:
            parts.append(("\n" + self.message, "$error"))
        return Content.assemble(*parts)

    def _at_end(self) -> bool:
        try:
            scroll = self.query_one(".generate-scroll", VerticalScroll)
        except Exception:
            return True
        return scroll.scroll_y >= scroll.max_scroll_y - 1

    def _show(self, follow: bool) -> None:
        if not self.is_mounted:
            return
        self.query_one(".generate-header", Static).update(self._header())
        self.query_one(".generate-body", Static).update(self._body())
        if follow:
            self.query_one(".generate-scroll", VerticalScroll).scroll_end(animate=False)

    def on_mount(self) -> None:
        self._show(follow=False)
