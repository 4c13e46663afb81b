"""Rich renderings for the headless CLI."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from core.dataset import TokenDataset
from core.stats import corpus_stats, token_preview
from core.text import visible

# Two alternating backgrounds that stay distinct on a 256-colour terminal.
TOKEN_STYLES = ("on grey23", "on dark_blue")


def render_stats(console: Console, ds: TokenDataset) -> None:
    st = corpus_stats(ds, top=12)
    cache = "cache hit" if ds.cache_hit else "tokenized now"
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    # (Text: a path or token from the corpus is shown as it is, never read as markup)
    summary.add_row("corpus", Text(f"{visible(st.source)} ({st.n_files} file"
                                   f"{'s' * (st.n_files != 1)}, {st.n_bytes:,} bytes)"))
    summary.add_row("tokenizer", f"{st.tokenizer}, vocabulary {st.vocab_size:,} ({cache})")
    summary.add_row("characters", f"{st.n_chars:,}")
    summary.add_row("tokens", f"{st.n_tokens:,} ({st.chars_per_token:.2f} chars/token)")
    summary.add_row("splits", "  ".join(f"{k} {v:,}" for k, v in st.split_tokens.items()))
    if st.unk_rate is not None:
        summary.add_row("unknown", f"{st.unk_rate:.2%} of tokens are <unk>")
    console.print(summary)

    top = Table(title="most frequent tokens", title_justify="left")
    top.add_column("token")
    top.add_column("count", justify="right")
    top.add_column("share", justify="right")
    for token, count in st.top_tokens:
        top.add_row(Text(repr(token)), f"{count:,}", f"{count / st.n_tokens:.1%}")
    hist = Table(title="token length (chars)", title_justify="left")
    hist.add_column("len", justify="right")
    hist.add_column("share")
    peak = max(st.length_histogram.values())
    for length, count in list(st.length_histogram.items())[:12]:
        bar = "█" * max(1, round(20 * count / peak))
        hist.add_row(str(length), f"{bar} {count / st.n_tokens:.1%}")
    both = Table.grid(padding=(0, 4))
    both.add_row(top, hist)
    console.print(both)


def render_preview(console: Console, ds: TokenDataset, n_chars: int) -> None:
    text = ds.corpus.head(n_chars)
    # (a control character is shown as its symbol, ␛ for ESC, one for one: the spans hold)
    shown = visible(text, keep="\n\t")
    out = Text()
    last = 0
    for i, span in enumerate(token_preview(ds.tokenizer, text)):
        out.append(shown[last:span.start])
        out.append(shown[span.start:span.end], style=TOKEN_STYLES[i % 2])
        last = span.end
    out.append(shown[last:])
    console.rule("preview (token boundaries in alternating colours)")
    console.print(out)
