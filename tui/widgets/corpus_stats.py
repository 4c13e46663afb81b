"""The Dataset pane's statistics: counts, the most frequent tokens, token lengths."""

from __future__ import annotations

from textual.content import Content
from textual.widget import Widget

from core.estimate import human_bytes, human_count
from core.text import visible as shown

VISIBLE = str.maketrans({" ": "␣", "\n": "↵", "\t": "→", "\r": "␍"})


def visible(token: str) -> str:
    """A token with its whitespace and control characters made visible, for a table."""
    return shown(token.translate(VISIBLE)) or "∅"


class CorpusStatsView(Widget):
    """Three columns: summary counts, top tokens, and a token-length histogram."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stats = None  # a core.stats.CorpusStats
        self.cache_hit = False

    def show(self, stats, cache_hit: bool = False) -> None:
        self.stats = stats
        self.cache_hit = cache_hit
        self.refresh(layout=True)

    def clear(self) -> None:
        self.stats = None
        self.refresh(layout=True)

    def summary(self) -> Content:
        st = self.stats
        files = f"{st.n_files} file{'s' * (st.n_files != 1)}"
        source = st.source if len(st.source) <= 28 else "…" + st.source[-27:]
        splits = st.split_tokens
        rows = [
            ("source", source),
            ("size", f"{files}, {human_bytes(st.n_bytes)}"),
            ("chars", f"{st.n_chars:,}"),
            ("tokens", f"{st.n_tokens:,} ({st.chars_per_token:.2f} ch/tok)"),
            ("vocab", f"{st.vocab_size:,} {st.tokenizer}"),
            ("unknown", "n/a" if st.unk_rate is None else f"{st.unk_rate:.2%}"),
            ("split", f"{human_count(splits['train'])} train, {human_count(splits['val'])} val"
                      + (f", {human_count(splits['test'])} test" if splits["test"] else "")),
        ]
        lines = [Content.assemble((f"{k:<8}", "$text-muted"), v) for k, v in rows]
        return Content("\n").join(lines)

    def top_tokens(self, n: int = 7) -> Content:
        st = self.stats
        lines = [Content.assemble(("top tokens", "bold"))]
        for token, count in st.top_tokens[:n]:
            share = count / max(st.n_tokens, 1)
            lines.append(Content.assemble((f"{visible(token)[:8]:<8}", "$accent"),
                                          f" {share:6.1%}"))
        return Content("\n").join(lines)

    def lengths(self, n: int = 6, width: int = 10) -> Content:
        st = self.stats
        lines = [Content.assemble(("token length", "bold"))]
        hist = st.length_histogram
        peak = max(hist.values()) if hist else 1
        items = list(hist.items())
        shown, rest = items[: n - 1], items[n - 1:]
        if rest:
            shown.append((rest[0][0], sum(c for _, c in rest)))
        for i, (length, count) in enumerate(shown):
            label = f"{length}+" if rest and i == len(shown) - 1 else str(length)
            bar = "█" * max(1, round(width * count / peak))
            lines.append(Content.assemble(f"{label:>3} ", (f"{bar:<{width}}", "$primary"),
                                          f" {count / max(st.n_tokens, 1):4.0%}"))
        return Content("\n").join(lines)

    def render(self) -> Content:
        if self.stats is None:
            return Content("")
        columns = [self.summary(), self.top_tokens(), self.lengths()]
        split = [c.split("\n") for c in columns]
        widths = [max((line.cell_length for line in col), default=0) for col in split]
        height = max(len(col) for col in split)
        out = []
        for row in range(height):
            cells = []
            for col, width in zip(split, widths, strict=True):
                line = col[row] if row < len(col) else Content("")
                cells.append(line.pad_right(width - line.cell_length))
            out.append(Content("  ").join(cells))
        return Content("\n").join(out)
