"""`llmlab prune | quantize` and the RUN|MODEL loading shared with `eval` and `sample`."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from core.errors import LlmlabError
from core.session import field_doc

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
    from core.workbench import Workbench

    return Workbench(source)


def describe_source(wb) -> str:
    """One line naming what a Workbench loaded: a run's checkpoint or a compressed model."""
    meta = wb.bench.compressed_meta
    if meta is None:
        return f"run {wb.bench.source} (checkpoint step {wb.bench.step})"
    from core.workbench import compression_label

    origin = f"from {meta['source']} step {wb.bench.step}" if meta.get("source") else ""
    what = ", ".join(x for x in (compression_label(meta), origin) if x)
    return f"compressed model {wb.bench.source}" + (f" ({what})" if what else "")


def cmd_prune(args: argparse.Namespace) -> int:
    console = Console()
    if args.method == "all" and not args.sweep:
        raise LlmlabError("--method all: only with --sweep")
    if not 0.0 <= args.sparsity < 1.0:
        raise LlmlabError(f"--sparsity: must be in [0, 1) (got {args.sparsity})")
    if args.finetune < 0:
        raise LlmlabError(f"--finetune: must be >= 0 (got {args.finetune})")
    with console.status("loading the model and a fixed val sample ..."):
        wb = open_workbench(args.run, args.runs_dir)
    if args.sweep:
        _print_sweep(console, wb, METHODS if args.method == "all" else (args.method,))
        return EXIT_OK
    columns = [wb.dense_figures()]
    with console.status(f"pruning ({args.method} {args.sparsity:.0%}) ..."):
        columns.append(wb.prune(args.method, args.sparsity))
    if args.finetune:
        with console.status(f"fine-tuning {args.finetune} steps ...") as status:
            columns.append(wb.finetune(args.finetune, on_step=lambda i, loss: status.update(
                f"fine-tuning: step {i}/{args.finetune}, loss {loss:.4f}")))
    if args.int8:
        with console.status("quantizing to int8 ..."):
            columns.append(wb.quantize())
    print_figures(console, columns)
    _print_saved(console, wb.save(args.out))
    return EXIT_OK


def cmd_quantize(args: argparse.Namespace) -> int:
    console = Console()
    with console.status("loading ..."):
        wb = open_workbench(args.run, args.runs_dir)
    with console.status("quantizing to int8 ..."):
        columns = [wb.dense_figures(), wb.quantize()]
    print_figures(console, columns)
    _print_saved(console, wb.save(args.out))
    return EXIT_OK


def _print_saved(console: Console, path: Path) -> None:
    # Never wrapped (a path is copied from here) nor read as markup (a path may hold "[").
    console.print(f"saved {path}", soft_wrap=True, markup=False, highlight=False)


def _print_sweep(console: Console, wb, methods: tuple[str, ...]) -> None:
    table = Table(title=f"loss / top-1 against sparsity ({wb.bench.source}, fixed val sample)")
    table.add_column("sparsity", justify="right")
    rows: dict[float, list[str]] = {}
    for method in methods:
        table.add_column(method, justify="right")
        with console.status(f"sweeping {method} ..."):
            for p in wb.sweep(method):
                rows.setdefault(p.sparsity, []).append(f"{p.loss:.3f} / {p.top1:.1%}")
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
        ("latency", lambda c: f"{c.latency_ms:.2f} ms ({dense.latency_ms / c.latency_ms:.2f}x)"),
    ]
    for name, cell in rows:
        table.add_row(name, *(cell(c) for c in columns))
    console.print(table)
