"""Checkpoints: one folder per step, written so that a kill never leaves a half one.

A checkpoint is `step-0000500/` holding `model.safetensors` (the weights; safetensors cannot run
code when read), `state.pt` (optimizer, RNG and generator states, counters: tensors and plain
Python values only, read back with `weights_only=True`, never unrestricted pickle) and
`meta.json` (the step and whatever the trainer wants to show without loading tensors).

Atomicity: the three files are written and fsynced in a hidden `.tmp-step-...` folder that
`list_checkpoints` never counts, then the folder is renamed into place (a rename is atomic) and
the parent folder is fsynced so the rename survives a power cut. Deleting goes the other way:
rename to a hidden name first, then remove, so a half-deleted folder never counts either.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors import safe_open
from safetensors.torch import load_model, save_model
from torch import nn

from core.errors import CheckpointDiskFault, CheckpointError, disk_fault
from core.fileio import fsync_dir, fsync_file, jsonable, make_temp_folder, read_small_text
from core.runs import CHECKPOINT_FILES, complete_checkpoints

FILES = CHECKPOINT_FILES
WEIGHTS_FILE, STATE_FILE, META_FILE = FILES
MASK_SUFFIX = "_mask"  # masks of gradual pruning, saved beside their weights
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")  # safetensors' names; weights are never integers
TMP_PREFIX = ".tmp-"


@dataclass
class CheckpointInfo:
    path: Path
    step: int
    meta: dict[str, Any] = field(default_factory=dict)


def step_dir_name(step: int) -> str:
    return f"step-{step:07d}"


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP / DataParallel / torch.compile wrappers.

    Saving the wrapper would prefix every key (`module.`, `_orig_mod.`) and the checkpoint
    would not load into a plain model.
    """
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


# --------------------------------------------------------------------------- saving

def save_checkpoint(ckpt_root: Path, step: int, model: nn.Module, state: dict,
                    meta: dict) -> Path:
    """Write the checkpoint for `step` atomically and return its folder.

    An existing folder for the same step is replaced: old one renamed aside, new one renamed
    in, old one deleted. Raises CheckpointDiskFault (one line) if the disk refuses.
    """
    final = Path(ckpt_root) / step_dir_name(step)
    try:
        with atomic_folder(final) as tmp:
            _write_files(tmp, step, model, state, meta)
    except OSError as e:
        raise disk_fault(e, "save checkpoint", final, CheckpointDiskFault) from None
    return final


@contextmanager
def atomic_folder(final: Path) -> Iterator[Path]:
    """A temporary folder beside `final` that becomes `final` in one rename when the block
    ends without an error; on an error it is removed and `final` stays as it was."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_folder(final.parent, f"{TMP_PREFIX}{final.name}-")
    try:
        yield tmp
        fsync_dir(tmp)
        move_into_place(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _write_files(folder: Path, step: int, model: nn.Module, state: dict, meta: dict) -> None:
    """Write the three files; a write the disk refuses is an OSError whatever the writer (the
    libraries report it in their own words: see _os_error, _WriteRecorder)."""
    try:
        # save_model (not save_file) drops the second name of a tied tensor instead of failing.
        save_model(unwrap(model), str(folder / WEIGHTS_FILE))
    except Exception as e:  # an OSError in the library's wording, or a bug
        if (refused := _os_error(e, folder / WEIGHTS_FILE)) is None:
            raise
        raise refused from e
    fsync_file(folder / WEIGHTS_FILE)
    with open(folder / STATE_FILE, "wb") as f:
        recorder = _WriteRecorder(f)
        try:
            torch.save(state, recorder)
        except Exception as e:
            if recorder.error is None or recorder.error is e:
                raise
            raise recorder.error from e
        f.flush()
        os.fsync(f.fileno())
    with open(folder / META_FILE, "w", encoding="utf-8") as f:
        json.dump({**meta, "step": step}, f, indent=2, default=jsonable)
        f.flush()
        os.fsync(f.fileno())


class _WriteRecorder:
    """The file torch.save writes through, keeping the OSError of a refused write: torch
    reports it only as `[enforce fail at inline_container.cc] ... unexpected pos`."""

    def __init__(self, file: BinaryIO):
        self.file = file
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def flush(self) -> None:
        self.file.flush()


def _os_error(e: Exception, file: Path) -> OSError | None:
    """The OSError inside a safetensors error (`No space left on device (os error 28)`), or
    None: not a refused write."""
    if isinstance(e, OSError):
        return None  # (raised as it is)
    found = re.search(r"\(os error (\d+)\)", str(e))
    if found is None:
        return None
    code = int(found.group(1))
    return OSError(code, os.strerror(code), str(file))


def move_into_place(tmp: Path, final: Path) -> None:
    """Rename `tmp` to `final`, replacing an existing `final` (a step saved twice).

    POSIX cannot rename a folder over a non-empty one, so the old folder is renamed aside
    first. A kill between the two renames leaves both as hidden `.tmp-*` folders: that step is
    then missing (an earlier checkpoint is the latest) but nothing half-written ever counts.
    """
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f"{TMP_PREFIX}old-{final.name}-"))
        os.rename(final, old / final.name)
    try:
        os.rename(tmp, final)
    except OSError:
        if old is not None:  # put the old one back
            os.rename(old / final.name, final)
        raise
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- listing, pruning

def list_checkpoints(ckpt_root: Path) -> list[CheckpointInfo]:
    """Complete checkpoints, oldest first; temporary and incomplete folders do not count."""
    return [CheckpointInfo(path, step, _read_meta_or_empty(path))
            for step, path in complete_checkpoints(ckpt_root)]


def latest_checkpoint(ckpt_root: Path) -> CheckpointInfo | None:
    checkpoints = list_checkpoints(ckpt_root)
    return checkpoints[-1] if checkpoints else None


def prune_checkpoints(ckpt_root: Path, keep_last: int, keep: Iterable[int] = ()) -> None:
    """Delete all but the newest `keep_last` checkpoints and the steps in `keep`.

    Also removes `.tmp-*` leftovers of saves or deletions that were killed; call it only from
    the one process that saves (it would delete a save in progress).
    """
    ckpt_root = Path(ckpt_root)
    checkpoints = list_checkpoints(ckpt_root)
    newest = checkpoints[-keep_last:] if keep_last > 0 else []
    kept = {info.step for info in newest} | set(keep)
    for info in checkpoints:
        if info.step not in kept:
            _remove_dir(info.path)
    if ckpt_root.is_dir():
        for entry in ckpt_root.iterdir():
            if entry.name.startswith(TMP_PREFIX) and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)


def _remove_dir(path: Path) -> None:
    """Rename to a hidden name, then delete: a kill mid-delete leaves only a `.tmp-*` folder."""
    doomed = path.with_name(f"{TMP_PREFIX}del-{path.name}")
    try:
        os.rename(path, doomed)
    except OSError:
        return
    shutil.rmtree(doomed, ignore_errors=True)


def _read_meta_or_empty(folder: Path) -> dict[str, Any]:
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


# --------------------------------------------------------------------------- loading

def load_checkpoint(path: Path, model: nn.Module,
                    device: str | torch.device = "cpu") -> tuple[dict, dict]:
    """Load the weights into `model` and return (state, meta).

    Files, names, shapes and dtypes are read and checked before the model is touched, so a
    damaged checkpoint raises CheckpointError (one line naming the folder and the cause) and
    leaves the model as it was; NaN or infinite values are found after loading (callers load
    into a model built for the purpose and drop it on an error). The state is loaded on the
    CPU whatever `device` is: RNG states must be CPU tensors, and `optimizer.load_state_dict`
    moves its tensors to the parameters' device.
    """
    path = Path(path)
    _check_files(path, FILES)
    meta = _read_meta(path)
    state = _read_state(path)
    _load_weights(path, path / WEIGHTS_FILE, model, device)
    return state, meta


def load_model_weights(path: Path, model: nn.Module, device: str | torch.device = "cpu") -> None:
    """Only the weights (for evaluation and sampling); `path` is a checkpoint folder or its
    `model.safetensors`."""
    path = Path(path)
    if path.is_file():
        _load_weights(path.parent, path, model, device)
        return
    _check_files(path, (WEIGHTS_FILE,))
    _load_weights(path, path / WEIGHTS_FILE, model, device)


def _check_files(path: Path, names: tuple[str, ...]) -> None:
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path}: no such checkpoint folder")
    missing = [name for name in names if not (path / name).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {path}: missing {', '.join(missing)}")


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(read_small_text(path / META_FILE))
    except (OSError, ValueError) as e:  # ValueError covers bad JSON and bad UTF-8
        raise CheckpointError(f"checkpoint {path}: {META_FILE} is not valid JSON "
                              f"({one_line(e)})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path}: {META_FILE} is not a JSON object")
    return meta


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"checkpoint {path}: {STATE_FILE} holds Python objects that a "
                              f"safe load refuses{_refused_global(e)}") from None
    except Exception as e:  # a truncated or foreign file: zip, pickle or storage errors
        raise CheckpointError(f"checkpoint {path}: {STATE_FILE} is damaged "
                              f"({one_line(e)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: {STATE_FILE} does not hold a dict")
    return state


def _load_weights(path: Path, file: Path, model: nn.Module, device: str | torch.device) -> None:
    model = unwrap(model)
    problem = _weights_problem(file, model)
    if problem:
        raise CheckpointError(f"checkpoint {path}: {problem}")
    try:
        missing, unexpected = load_model(model, file, strict=False, device=str(device))
    except Exception as e:  # the header was fine, so the data is damaged
        raise CheckpointError(f"checkpoint {path}: {WEIGHTS_FILE} is damaged "
                              f"({one_line(e)})") from None
    # Checked above already; strict=False so that a miss still ends in a one-line message.
    if missing or unexpected:
        parts = [describe_names("missing", missing), describe_names("unexpected", unexpected)]
        raise CheckpointError(f"checkpoint {path}: weights do not fit this model "
                              f"({'; '.join(p for p in parts if p)})")
    not_finite = [name for name, t in model.state_dict().items()
                  if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if not_finite:  # the model was built for this load: a caller never keeps it
        raise CheckpointError(f"checkpoint {path}: {WEIGHTS_FILE} holds NaN or infinite values "
                              f"({not_finite[0]}{_and_more(len(not_finite))})")


def _and_more(count: int) -> str:
    return f" and {count - 1} more" if count > 1 else ""


def check_parameter_claim(path: Path, expected: int, claim: str) -> None:
    """Refuse weights that cannot be the model a config claims, before that model is built.

    `expected` is `core.estimate.param_count` of the claimed config (exact for every
    architecture, a tied weight once, as safetensors stores it); the file's header must hold
    exactly that many numbers, masks aside. Without this, a run folder whose session.toml
    claims n_layer=1000 beside a 0.4 MB weights file allocates gigabytes before the
    per-tensor check in `load_model_weights` can say no. `path`: a checkpoint folder or its
    weights file; `claim`: what made the claim, for the message.
    """
    path = Path(path)
    file = path / WEIGHTS_FILE if path.is_dir() else path
    try:
        with safe_open(str(file), framework="pt") as f:
            shapes = [f.get_slice(key).get_shape() for key in f.keys()
                      if not key.endswith(MASK_SUFFIX)]
    except Exception as e:  # truncated, not safetensors, unreadable
        raise CheckpointError(f"checkpoint {path}: {WEIGHTS_FILE} is damaged "
                              f"({one_line(e)})") from None
    held = sum(_numel(shape) for shape in shapes)
    if held != expected:
        raise CheckpointError(f"checkpoint {path}: {claim} claims {expected:,} parameters but "
                              f"{WEIGHTS_FILE} holds {held:,}; refused before building it")


def _numel(shape: Iterable[int]) -> int:
    n = 1
    for size in shape:
        n *= size
    return n


def _weights_problem(file: Path, model: nn.Module) -> str | None:
    """What makes the safetensors file unloadable into `model`, read from its header only.

    A tied tensor has several names in the model and one in the file (save_model keeps one),
    so names are compared per group of names that share memory.
    """
    try:
        with safe_open(str(file), framework="pt") as f:
            shapes = {key: list(f.get_slice(key).get_shape()) for key in f.keys()}
            dtypes = {key: f.get_slice(key).get_dtype() for key in f.keys()}
    except Exception as e:  # truncated, not safetensors, unreadable
        return f"{WEIGHTS_FILE} is damaged ({one_line(e)})"
    not_float = {key: dtype for key, dtype in dtypes.items() if dtype not in FLOAT_DTYPES}
    if not_float:
        key, dtype = next(iter(not_float.items()))
        return (f"{WEIGHTS_FILE} holds {dtype} weights ({key}{_and_more(len(not_float))}); "
                f"weights are floating point")
    state = model.state_dict()
    mismatch = names_mismatch(shapes, state)
    if mismatch:
        return f"weights do not fit this model ({mismatch})"
    for key, shape in shapes.items():
        if shape != list(state[key].shape):
            return (f"weights do not fit this model ({key} has shape {shape} in the checkpoint, "
                    f"{list(state[key].shape)} in the model)")
    return None


def names_mismatch(file_keys: Iterable[str], state: dict[str, torch.Tensor]) -> str | None:
    """"missing ...; unexpected ..." when the tensor names of a file do not match a model's
    state (each group of tied names must be present exactly once), else None."""
    file_keys = set(file_keys)
    unexpected = [key for key in file_keys if key not in state]
    missing = []
    for names in shared_names(state):
        present = [key for key in names if key in file_keys]
        if not present:
            missing.append(names[0])
        unexpected += present[1:]  # a tie in the model that the file holds as two tensors
    if not (missing or unexpected):
        return None
    parts = [describe_names("missing", missing), describe_names("unexpected", sorted(unexpected))]
    return "; ".join(p for p in parts if p)


def shared_names(state: dict[str, torch.Tensor]) -> list[list[str]]:
    """The state dict's names grouped by the tensor they name (tied weights share one)."""
    groups: dict[tuple, list[str]] = {}
    for key, t in state.items():
        ident = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        groups.setdefault(ident if t.numel() else (key,), []).append(key)
    return list(groups.values())


def describe_names(label: str, keys: Iterable[str], shown: int = 3) -> str:
    """`label: a, b, c and 4 more`, or "" for no keys."""
    keys = sorted(keys)
    if not keys:
        return ""
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return f"{label}: {', '.join(keys[:shown])}{more}"


def _refused_global(e: Exception) -> str:
    """The class torch refused to unpickle, from its long explanation."""
    match = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
    return f" ({match.group(1)})" if match else ""


def one_line(e: BaseException, limit: int = 200) -> str:
    """The first sentence of an exception's message, on one line."""
    text = " ".join(str(e).split()).split(". ")[0] or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
