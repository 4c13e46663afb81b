"""`llmlab export RUN|MODEL --format hf|onnx|tensorboard OUT`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import LlmlabError
from core.text import one_line

EXIT_OK = 0
FORMATS = {
    "hf": "a transformers folder (AutoModelForCausalLM / AutoTokenizer); gpt only",
    "onnx": "model.onnx for onnxruntime (input_ids -> logits) and tokenizer.json",
    "tensorboard": "the run's metrics as TensorBoard event files (a run, not a MODEL)",
}


def add_parser(sub) -> None:
    """Register `export` on the CLI's subparsers."""
    formats = "; ".join(f"{name}: {what}" for name, what in FORMATS.items())
    p = sub.add_parser("export", help="write a run's model (hf, onnx) or metrics (tensorboard) "
                                      "in another tool's format",
                       description="Write a run's best checkpoint or a saved compressed model "
                                   f"to the folder OUT. Formats: {formats}.")
    p.add_argument("run", metavar="RUN|MODEL",
                   help="a run (folder, SESSION/RUN-ID, SESSION or latest) or a saved "
                        "compressed-model folder")
    p.add_argument("out", metavar="OUT", type=Path, help="the folder to write")
    p.add_argument("--format", required=True, dest="fmt", metavar="FORMAT",
                   help="hf, onnx or tensorboard")
    p.add_argument("--force", action="store_true",
                   help="replace OUT if it exists and is not empty")
    p.add_argument("--runs-dir", default="runs", type=Path,
                   help="where runs live (default: ./runs)")


def cmd_export(args: argparse.Namespace) -> int:
    from core.export import check_libraries, check_out
    from core.runs import find_run, is_compressed_model

    if args.fmt not in FORMATS:
        raise LlmlabError(f"--format {args.fmt}: not a format (choose {', '.join(FORMATS)})")
    check_libraries(args.fmt)
    spec_path = Path(args.run).expanduser()
    if args.fmt == "tensorboard":
        if is_compressed_model(spec_path):
            raise LlmlabError(f"{args.run}: a saved model has no metrics; export its run")
        run_dir = find_run(args.run, args.runs_dir)
        check_out(args.out, run_dir, args.force)
        return _export_metrics(run_dir, args.out)
    source = spec_path if is_compressed_model(spec_path) else find_run(args.run, args.runs_dir)
    check_out(args.out, source, args.force)
    return _export_model(args.fmt, source, args.out, args.runs_dir)


def _export_model(fmt: str, source: Path, out: Path, runs_dir: Path) -> int:
    from core.export import export_model
    from llmlab.compress_commands import describe_source, open_workbench

    wb = open_workbench(str(source), runs_dir)
    export_model(fmt, wb.model, wb.bench.tokenizer, out)
    how = ("load it with transformers' AutoModelForCausalLM.from_pretrained and "
           "AutoTokenizer.from_pretrained" if fmt == "hf" else
           "run it with onnxruntime: input_ids [batch, seq] int64 -> logits")
    _say(f"wrote {out} from {describe_source(wb)}; {how}")
    return EXIT_OK


def _export_metrics(run_dir: Path, out: Path) -> int:
    from core.export import export_run_metrics

    scalars = export_run_metrics(run_dir, out)
    _say(f"wrote {scalars} scalars of {run_dir} to {out}; view with: tensorboard --logdir {out}")
    return EXIT_OK


def _say(text: str) -> None:
    print(one_line(text), file=sys.stdout)
