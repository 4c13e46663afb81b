"""A trained run, loaded for evaluation and sampling: its frozen session, its own tokenizer and
the weights of its best (or latest) checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from core.checkpoint import (
    CheckpointInfo,
    check_parameter_claim,
    list_checkpoints,
    load_model_weights,
)
from core.errors import LlmlabError
from core.estimate import describe_model, param_count
from core.models import build_model
from core.prune import attach_masks, fold_masks
from core.runs import load_run_session, read_run_info
from core.session import Session
from core.tokenizers import Tokenizer, load_tokenizer


@dataclass
class LoadedRun:
    run_dir: Path
    session: Session
    tokenizer: Tokenizer
    model: torch.nn.Module
    step: int  # the checkpoint's step


def pick_checkpoint(run_dir: Path, which: str = "best") -> CheckpointInfo:
    """The best-by-val checkpoint (falling back to the latest), or the latest."""
    ckpts = list_checkpoints(run_dir / "checkpoints")
    if not ckpts:
        raise LlmlabError(f"{run_dir}: no complete checkpoint in this run")
    if which == "best":
        best_step = read_run_info(run_dir).get("best_step")
        for ckpt in ckpts:
            if ckpt.step == best_step:
                return ckpt
    return ckpts[-1]


def load_run(run_dir: str | Path, which: str = "best", device: str = "cpu") -> LoadedRun:
    run_dir = Path(run_dir)
    session = load_run_session(run_dir)
    tokenizer = load_tokenizer(run_dir)
    ckpt = pick_checkpoint(run_dir, which)
    check_parameter_claim(ckpt.path, param_count(session.model, tokenizer.vocab_size),
                          f"{run_dir / 'session.toml'} ({describe_model(session.model)})")
    model = build_model(session.model, tokenizer.vocab_size)
    if ckpt.meta.get("masked"):  # saved during gradual pruning: masks are in the file
        attach_masks(model)
        load_model_weights(ckpt.path, model, device)
        fold_masks(model)
    else:
        load_model_weights(ckpt.path, model, device)
    model.to(device).eval()
    return LoadedRun(run_dir, session, tokenizer, model, ckpt.step)
