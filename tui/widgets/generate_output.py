"""One output column of the Generate pane: a header line and the streamed text.

The header names the model and shows the figures of the generation (tokens so far, tokens/s,
and whether it is under way, done or stopped); below it the prompt is shown dimmed and the
generated text after it (tui.widgets.stream_text: wrapped by cell width, a CJK character
taking two cells; following the end while new text comes in unless the user scrolled up to
read). A new piece redraws the header line and the body's last lines, never the whole text.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Static

from core.estimate import human_count
from core.text import visible
from tui.widgets.stream_text import StreamText

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
        self._header_height = 0  # lines the header took when last shown

    def compose(self) -> ComposeResult:
        yield Static(self._header(), classes="generate-header", markup=False)
        yield StreamText(classes="generate-scroll")

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
        self._show()

    def append(self, piece: str, tokens: int, tokens_per_s: float) -> None:
        self.tokens = tokens
        self.tokens_per_s = tokens_per_s
        if self.state in ("failed", "idle"):  # (not begun: drawn again whole)
            self.state = "generating"
            self.message = ""
            self.text += piece
            self._show()
            return
        if self.state == "waiting":
            self.state = "generating"
        self.text += piece
        self._show_header()
        if self.is_mounted:
            self._body_widget().append(visible(piece, keep="\n\t"))

    def finish(self, state: str, message: str = "") -> None:
        """`state`: done, stopped or failed (with a `message` saying why)."""
        self.state = state
        self.message = message
        self._show_header()
        if self.is_mounted and state == "failed" and message:
            self._body_widget().append(("\n" + message, "$error"))

    def clear(self) -> None:
        """Forget the text shown (it came from a model no longer loaded): back to the hint."""
        self.prompt = self.text = self.message = ""
        self.tokens, self.tokens_per_s, self.max_tokens = 0, 0.0, 0
        self.state = "idle"
        self._show()

    def set_state(self, state: str) -> None:
        self.state = state
        self._show_header()

    def show_hint(self, message: str) -> None:
        """A line shown in place of text (no model yet, ...) while nothing was generated."""
        self.hint = message
        if self.state == "idle":
            self._show()

    def set_narrow(self, narrow: bool) -> None:
        self.narrow = narrow
        self._show_header()

    def set_label(self, label: str) -> None:
        self.label = label
        self._show_header()

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
        return Content.assemble(*self._body_parts())

    def _body_parts(self) -> list[Any]:
        if self.state == "idle":
            return [(self.hint, "$text-muted")]
        # (token strings come from a tokenizer file: control characters shown, not obeyed)
        parts: list[Any] = [(visible(self.prompt, keep="\n\t"), "$text-muted"),
                            visible(self.text, keep="\n\t")]
        if self.state == "failed" and self.message:
            parts.append(("\n" + self.message, "$error"))
        return parts

    def _body_widget(self) -> StreamText:
        return self.query_one(".generate-scroll", StreamText)

    def _show_header(self) -> None:
        """The header drawn again; the screen is laid out again only if its height changed
        (a layout costs the app more than a frame, and the engine generating beside it pays)."""
        if self.is_mounted:
            header = self._header()
            height = header.plain.count("\n") + 1
            self.query_one(".generate-header", Static).update(
                header, layout=height != self._header_height)
            self._header_height = height

    def _show(self) -> None:
        """Header and body drawn again from the column's values."""
        if not self.is_mounted:
            return
        self._show_header()
        self._body_widget().set_text(*self._body_parts())
        self._body_widget().scroll_end(animate=False, x_axis=False)  # (after the layout)

    def on_mount(self) -> None:
        self._show()
