"""`llmlab export`: a trained model, or a run's metrics, in the formats the field uses.

    hf           a transformers folder: GPT2LMHeadModel + tokenizer (core.export_hf)
    onnx         model.onnx for onnxruntime + tokenizer.json (core.export_onnx)
    tensorboard  an event file of the run's metrics (core.tensorboard)

Every export is written like a checkpoint: into a hidden temporary folder beside OUT, renamed
into place only when complete, so a failure or a kill never leaves half an export. An existing
OUT that holds anything is refused unless the caller passes `force` (then it is replaced), and
never when it holds the model or run being exported, or is or holds a run or a saved model.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from core.checkpoint import atomic_folder
from core.errors import LlmlabError, disk_fault
from core.runs import METRICS_FILE, is_compressed_model, is_run_dir, read_metrics
from core.tokenizers import TOKENIZER_FILE, Tokenizer

FORMATS = ("hf", "onnx", "tensorboard")
# The libraries each format needs beyond llmlab's own (the `export` extra has them).
NEEDS = {"hf": ("transformers",), "onnx": ("onnx", "onnxscript"), "tensorboard": ("tensorboardX",)}


def check_libraries(fmt: str) -> None:
    """One line naming what `fmt` needs and is not installed, before any work is done."""
    import importlib.util

    missing = [name for name in NEEDS[fmt] if importlib.util.find_spec(name) is None]
    if missing:
        raise LlmlabError(f"--format {fmt} needs {' and '.join(missing)}: "
                          "pip install 'llmlab[export]'")


def check_out(out: Path, source: Path, force: bool) -> None:
    """Refuse an OUT that would overwrite something: one line naming it and the cause."""
    out_abs, source_abs = out.absolute().resolve(), source.absolute().resolve()
    if out_abs == source_abs or source_abs.is_relative_to(out_abs):
        raise LlmlabError(f"{out}: holds {source}, the source of this export; "
                          "choose another folder")
    held = _llmlab_folder_in(out)
    if held is not None:
        what = "is" if held == out else f"holds {held},"
        raise LlmlabError(f"{out}: {what} a run or a saved model, not overwritten; "
                          "choose another folder")
    if out.is_dir():
        try:
            empty = next(out.iterdir(), None) is None
        except OSError as e:
            raise disk_fault(e, "read the folder", out) from None
        if not empty and not force:
            raise LlmlabError(f"{out}: exists and is not empty; not overwritten "
                              "(--force replaces it)")
    elif out.exists() or out.is_symlink():
        if not force:
            raise LlmlabError(f"{out}: exists and is not a folder; not overwritten "
                              "(--force replaces it)")


def _llmlab_folder_in(out: Path, depth: int = 3) -> Path | None:
    """A run or saved model that is `out` or lies up to `depth` folders below it (a session's
    runs folder, the runs root, the folder holding that): --force replaces an old export,
    never those."""
    if is_run_dir(out) or is_compressed_model(out):
        return out
    if depth == 0 or out.is_symlink() or not out.is_dir():
        return None
    try:
        children = [p for p in out.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return None
    for child in children:
        found = _llmlab_folder_in(child, depth - 1)
        if found is not None:
            return found
    return None


def _write(out: Path, write) -> None:
    """Run `write(tmp)` in a temporary folder that becomes `out` when it returns."""
    try:
        with atomic_folder(out) as tmp:
            write(tmp)
    except OSError as e:
        raise disk_fault(e, "write the export", out) from None


def export_model(fmt: str, model: nn.Module, tokenizer: Tokenizer, out: Path) -> None:
    """Write `model` and `tokenizer` to the folder `out` as `fmt` ("hf" or "onnx").

    The checks that can fail (family, tokenizer, missing libraries) run before anything is
    written. `model` must hold float weights on the CPU."""
    from core.quantize import is_quantized

    if is_quantized(model):
        raise LlmlabError(f"--format {fmt}: an int8 model has no float weights to export; "
                          "export its run, or a model saved without --int8")
    model = model.cpu().eval()
    if fmt == "hf":
        from core.export_hf import check_hf_exportable, write_hf_folder

        check_libraries(fmt)
        check_hf_exportable(model, tokenizer)
        _quiet_transformers()
        _write(out, lambda tmp: write_hf_folder(tmp, model, tokenizer))
    elif fmt == "onnx":
        from core.export_hf import fast_tokenizer
        from core.export_onnx import ONNX_FILE, write_onnx

        check_libraries(fmt)
        try:
            fast = fast_tokenizer(tokenizer)
        except LlmlabError:
            fast = None  # (jieba) the model still exports; its ids come from llmlab

        def write(tmp: Path) -> None:
            write_onnx(tmp / ONNX_FILE, model)
            if fast is not None:
                fast.save(str(tmp / TOKENIZER_FILE))

        _write(out, write)
    else:
        raise LlmlabError(f"--format {fmt}: not a model format (choose hf or onnx)")


def _quiet_transformers() -> None:
    """No progress bars or advice from transformers on the command's output."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def export_run_metrics(run_dir: Path, out: Path) -> int:
    """Write the run's metrics as TensorBoard events in the folder `out`; the scalars written."""
    from core.tensorboard import export_tensorboard

    check_libraries("tensorboard")
    records = read_metrics(run_dir)
    if not records:
        raise LlmlabError(f"{run_dir}: no metrics to export ({METRICS_FILE} has no records)")
    written: list[int] = []
    _write(out, lambda tmp: written.append(export_tensorboard(records, tmp)))
    return written[0]
