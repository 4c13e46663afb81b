"""`llmlab prune | quantize` and the RUN|MODEL loading shared with `eval` and `sample`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from core.errors import LlmlabError
from core.latency import format_latency, slower_than
from core.session import field_doc
from core.text import one_line

EXIT_OK = 0
METHODS: tuple[str, ...] = tuple(field_doc("compress.method")["choices"])


def add_parsers(sub) -> None:
    """Register `prune` and `quantize` on the CLI's subparsers."""
    prune = sub.add_parser("prune", help="prune a run's model; report and save it",
                           description="Prune a copy of a run's best checkpoint (the run is "
                                       "never changed), report what it costs, save it.")
    _source_args(prune)
    prune.add_argument("--sparsity", type=float, default=0.5, help="fraction to prune")
    prune.add_argument("--method", default="magnitude", choices=(*METHODS, "all"),
                       help="pruning method ('all' only with --sweep)")
    prune.add_argument("--finetune", type=int, default=0, metavar="STEPS",
                       help="fine-tune the pruned model this many steps")
    prune.add_argument("--int8", action="store_true", help="also quantize to int8")
    prune.add_argument("--sweep", action="store_true",
                       help="table of loss/accuracy at 0%%, 10%%, ... 95%% instead")
    prune.add_argument("--out", type=Path, help="where to save (default: RUN/compressed/...)")
    quantize = sub.add_parser("quantize", help="quantize a run's model (or a pruned model) "
                                               "to int8; report and save it")
    _source_args(quantize)
    quantize.add_argument("--out", type=Path, help="where to save")


def _source_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN|MODEL",
                        help="a run (folder, SESSION/RUN-ID, SESSION or latest) or a saved "
                             "compressed-model folder")
    parser.add_argument("--runs-dir", default="runs", type=Path,
                        help="where runs live (default: ./runs)")


def open_workbench(spec: str, runs_dir: Path):
    """A Workbench on a compressed-model folder or on a run found by `spec`."""
    from core.runs import find_run, is_compressed_model

    path = Path(spec).expanduser()
    # (core.workbench imports torch: a wrong name is answered before that)
    source = path if is_compressed_model(path) else find_run(spec, runs_dir)
    from core.device import fit_threads
    from core.workbench import Workbench

    wb = Workbench(source)
    fit_threads()  # sample, eval, prune...: the cores other work leaves free, as training does
    return wb


def describe_source(wb) -> str:
    """One line naming what a Workbench loaded: a run's checkpoint or a compressed model."""
    meta = wb.bench.compressed_meta
    if meta is None:
        return f"run {wb.bench.source} (checkpoint step {wb.bench.step})"
    from core.workbench import compression_label

    origin = f"from {meta['source']} step {wb.bench.step}" if meta.get("source") else ""
    what = ", ".join(x for x in (compression_label(meta), origin) if x)
    return one_line(f"compressed model {wb.bench.source}" + (f" ({what})" if what else ""))


def cmd_prune(args: argparse.Namespace) -> int:
    console = Console()
    if args.method == "all" and not args.sweep:
        raise LlmlabError("--method all: only with --sweep")
    if not 0.0 <= args.sparsity < 1.0:
        raise LlmlabError(f"--sparsity: must be in [0, 1) (got {args.sparsity})")
    if args.finetune < 0:
        raise LlmlabError(f"--finetune: must be >= 0 (got {args.finetune})")
    with Doing("loading the model and a fixed val sample ...") as doing:
        wb = open_workbench(args.run, args.runs_dir)
        if args.sweep:
            doing.stop()
            _print_sweep(console, wb, METHODS if args.method == "all" else (args.method,))
            return EXIT_OK
        doing.say("measuring the dense model ...")
        columns = [wb.dense_figures()]
        doing.say(f"pruning ({args.method} {args.sparsity:.0%}) ...")
        columns.append(wb.prune(args.method, args.sparsity))
        if args.finetune:
            doing.say(f"fine-tuning {args.finetune} steps ...")
            columns.append(wb.finetune(args.finetune, on_step=lambda i, loss: doing.say(
                f"fine-tuning: step {i}/{args.finetune}, loss {loss:.4f}", every=0.1)))
        if args.int8:
            doing.say("quantizing to int8 ...")
            columns.append(wb.quantize())
    print_figures(console, columns)
    _print_saved(console, wb.save(args.out))
    return EXIT_OK


def cmd_quantize(args: argparse.Namespace) -> int:
    console = Console()
    with Doing("loading ...") as doing:
        wb = open_workbench(args.run, args.runs_dir)
        doing.say("quantizing to int8 ...")
        columns = [wb.dense_figures(), wb.quantize()]
    print_figures(console, columns)
    _print_saved(console, wb.save(args.out))
    return EXIT_OK


class Doing:
    """What a command is doing, as one line on stderr, redrawn only when it changes.

    Unlike Rich's `status` there is no refresh thread (and no spinner): the workbench times
    forward passes meanwhile, and a thread waking up to draw is other work in the process that
    the timings would include (see core.latency)."""

    def __init__(self, text: str) -> None:
        self.live = Live(Text(text), console=Console(stderr=True), auto_refresh=False,
                         transient=True)
        self._drawn = 0.0

    def __enter__(self) -> Doing:
        self.live.start(refresh=True)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def say(self, text: str, every: float = 0.0) -> None:
        """Show `text` (at most once per `every` seconds)."""
        now = time.monotonic()
        if now - self._drawn >= every:
            self._drawn = now
            self.live.update(Text(text), refresh=True)

    def stop(self) -> None:
        self.live.stop()


def _print_saved(console: Console, path: Path) -> None:
    # Never wrapped (a path is copied from here) nor read as markup (a path may hold "[").
    console.print(f"saved {path}", soft_wrap=True, markup=False, highlight=False)


def _print_sweep(console: Console, wb, methods: tuple[str, ...]) -> None:
    """The sweep's table on stdout, after a progress bar on stderr (one step per level)."""
    from core.prune import SWEEP_LEVELS

    table = Table(title=f"loss / top-1 against sparsity ({wb.bench.source}, fixed val sample)")
    table.add_column("sparsity", justify="right")
    rows: dict[float, list[str]] = {}
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        TextColumn("{task.completed}/{task.total} levels"),
                        TimeElapsedColumn(), TimeRemainingColumn(),
                        console=Console(stderr=True), auto_refresh=False, transient=False)
    with progress:
        task = progress.add_task("sweep", total=len(methods) * len(SWEEP_LEVELS))
        for method in methods:
            table.add_column(method, justify="right")
            progress.update(task, description=f"sweeping {method}", refresh=True)

            def on_point(p, method=method) -> None:
                rows.setdefault(p.sparsity, []).append(f"{p.loss:.3f} / {p.top1:.1%}")
                progress.update(task, advance=1,
                                description=f"sweeping {method}: {p.sparsity:.0%} done",
                                refresh=True)

            wb.sweep(method, on_point=on_point)
    for level, cells in rows.items():
        table.add_row(f"{level:.0%}", *cells)
    console.print(table)


def print_figures(console: Console, columns) -> None:
    """The before/after table: one column per model."""
    table = Table(title="before / after (fixed val sample)")
    table.add_column("")
    for c in columns:
        table.add_column(c.label, justify="right")
    dense = columns[0]
    rows = [
        ("non-zero params", lambda c: f"{c.nonzero:,}"),
        ("sparsity", lambda c: f"{c.sparsity:.1%}"),
        ("file size",
         lambda c: f"{c.size_bytes / 1e6:.2f} MB ({c.size_bytes / dense.size_bytes:.2f}x)"),
        ("val loss", lambda c: f"{c.loss:.4f} ({c.loss - dense.loss:+.4f})"),
        ("perplexity", lambda c: f"{c.perplexity:.2f}"),
        ("top-1", lambda c: f"{c.top1:.1%}"),
        ("top-5", lambda c: f"{c.top5:.1%}"),
        ("ROC AUC", lambda c: "–" if c.auc is None else f"{c.auc:.4f}"),
        ("latency", lambda c: _latency_cell(c, dense)),
        ("per token", lambda c: _latency_cell(c, dense, per_token=True)),
    ]
    for name, cell in rows:
        table.add_row(name, *(cell(c) for c in columns))
    console.print(table)
    for c in columns[1:]:
        slower = slower_than(dense, c) if "int8" in c.label else ""
        if slower:  # (a small model: int8's cost per call outweighs its cheaper arithmetic)
            console.print(f"{c.label} runs slower than {dense.label} here ({slower}): it only "
                          "makes the file smaller; for speed keep the fp32 model",
                          soft_wrap=True, markup=False, highlight=False)


def _latency_cell(c, dense, per_token: bool = False) -> str:
    """"1.23 ms (1.05x)": the speed-up against dense only when both figures are trusted."""
    mine, base = (c.token_ms, dense.token_ms) if per_token else (c.latency_ms, dense.latency_ms)
    if mine is None or base is None:
        return format_latency(mine)
    return f"{mine:.2f} ms ({base / mine:.2f}x)"
