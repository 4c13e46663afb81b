"""The one writer of a run folder: the frozen session and tokenizer, run.json, metrics.jsonl.

Every file a training writes into `runs/<session>/<run-id>/` (except checkpoints, which
core.checkpoint writes atomically) goes through `RunWriter`; core.runs reads what it wrote.
Before it writes, a writer claims the folder (core.run_claim: the lock, the heartbeat), so
two jobs never write one run, and viewers anywhere can tell a live job from a dead one.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from core.errors import disk_fault
from core.fileio import atomic_write_text, jsonable
from core.run_claim import RunClaim
from core.runs import (
    CHECKPOINTS_DIR,
    INFO_FILE,
    METRICS_FILE,
    SESSION_FILE,
    process_start,
    read_metrics,
    read_run_info,
)
from core.session import Session, save_session
from core.tokenizers import TOKENIZER_FILE, Tokenizer

if TYPE_CHECKING:
    from torch import nn


class RunWriter:
    """Every file a training run writes goes through here; disabled, it writes nothing."""

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = False):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.ckpt_root = self.run_dir / CHECKPOINTS_DIR
        self._metrics: IO[str] | None = None
        self._info: dict[str, Any] | None = None
        # train.tensorboard: every record also goes to an event file in the run folder
        # (core.tensorboard), opened with the first record; a resume sets where it purges.
        self.tensorboard = tensorboard
        self._tb = None
        self._tb_purge: int | None = None
        self._claim: RunClaim | None = None

    def claim(self, announce: bool = True) -> None:
        """Claim the run folder for this process (LlmlabError naming the job that holds it);
        the heartbeat runs from `announce` until `close`. Disabled (not rank 0): nothing to
        claim."""
        if self.enabled and self._claim is None:
            self._claim = RunClaim.acquire(self.run_dir, announce)

    def announce(self) -> None:
        if self._claim is not None:
            self._claim.announce()

    @property
    def claimed(self) -> bool:
        return self._claim is not None

    def beat(self, state: str | None = None, step: int | None = None) -> None:
        """The job's state and step, for its heartbeat (no file is written here)."""
        if self._claim is not None:
            self._claim.beat(state, step)

    def write_session(self, session: Session) -> None:
        if self.enabled:
            save_session(session, self.run_dir / SESSION_FILE)

    def write_tokenizer(self, tokenizer: Tokenizer) -> None:
        if self.enabled:
            text = json.dumps(tokenizer.to_dict(), ensure_ascii=False)
            atomic_write_text(self.run_dir / TOKENIZER_FILE, text)

    def update_info(self, **fields: Any) -> None:
        """Merge `fields` into run.json and rewrite it atomically. The file is read again
        first: a user may have named the run or written notes (`set_run_label`) meanwhile.
        A run marked running also gets this process's pid and host: if that process dies
        without a word (a dropped SSH connection), readers can tell the run is lost
        (`run_status`)."""
        if not self.enabled:
            return
        if fields.get("status") == "running":
            fields.update(pid=os.getpid(), host=socket.gethostname(),
                          pid_start=process_start(os.getpid()))
        on_disk = read_run_info(self.run_dir)  # ({} if missing or damaged: keep ours)
        self._info = {**(on_disk or self._info or {}), **fields}
        atomic_write_text(self.run_dir / INFO_FILE,
                          json.dumps(self._info, indent=2, default=jsonable) + "\n")

    def log(self, record: dict[str, Any]) -> None:
        """Append one record to metrics.jsonl; it is on disk (flushed) when this returns."""
        if not self.enabled:
            return
        try:
            if self._metrics is None:
                self._metrics = self._open_metrics()
            self._metrics.write(json.dumps(record, default=jsonable) + "\n")
        except OSError as e:
            raise disk_fault(e, "write metrics", self.run_dir / METRICS_FILE) from None
        if self.tensorboard:
            self._log_tensorboard(record)

    def _log_tensorboard(self, record: dict[str, Any]) -> None:
        from core.tensorboard import TensorBoardLog

        try:
            if self._tb is None:
                self._tb = TensorBoardLog(self.run_dir, purge_step=self._tb_purge)
            self._tb.write(record)
        except OSError as e:
            raise disk_fault(e, "write TensorBoard events", self.run_dir) from None

    def _open_metrics(self) -> IO[str]:
        path = self.run_dir / METRICS_FILE
        f = open(path, "a+", buffering=1, encoding="utf-8")  # line-buffered: flushed per record
        if f.tell() > 0:  # a crash may have torn the last line: start on a fresh one
            f.seek(f.tell() - 1)
            if f.read(1) != "\n":
                f.write("\n")
        return f

    def close(self, final_state: str | None = None) -> None:
        """Close the files, and end the claim (`final_state`: how the job ended, for the
        last heartbeat)."""
        self._close_files()
        if self._claim is not None:
            claim, self._claim = self._claim, None
            claim.release(final_state)

    def _close_files(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
        if self._tb is not None:
            tb, self._tb = self._tb, None
            try:
                tb.close()
            except OSError:  # (every record was flushed as it came)
                pass

    def save_checkpoint(self, step: int, model: nn.Module, state: dict, meta: dict,
                        keep_last: int, val_loss: float | None = None) -> tuple[Path, bool]:
        """Save a checkpoint, track the best by validation loss, prune; (path, is_best).

        The best checkpoint survives pruning whatever its age. Disabled, nothing is written
        and the path the checkpoint would have had is returned.
        """
        from core import checkpoint

        path = self.ckpt_root / checkpoint.step_dir_name(step)
        if not self.enabled:
            return path, False
        if self._info is None:
            self._info = read_run_info(self.run_dir)
        best = self._info.get("best_val_loss")
        is_best = (val_loss is not None and math.isfinite(val_loss)
                   and (best is None or val_loss < best))
        path = checkpoint.save_checkpoint(self.ckpt_root, step, model, state,
                                          {"val_loss": val_loss, **meta})
        if is_best:
            self.update_info(best_step=step, best_val_loss=val_loss)
        self.log({"type": "checkpoint", "step": step, "path": str(path), "best": is_best,
                  "time": time.time()})
        best_step = self._info.get("best_step")
        checkpoint.prune_checkpoints(self.ckpt_root, keep_last,
                                     keep={best_step} if best_step is not None else set())
        return path, is_best

    def truncate_metrics_after(self, step: int) -> None:
        """Drop the records after `step` (and torn lines), so a resumed run has no duplicate
        tail: the steps after the checkpoint it resumes from are about to be redone."""
        if not self.enabled:
            return
        self._close_files()
        self._tb_purge = step + 1  # the events of the steps redone are hidden
        path = self.run_dir / METRICS_FILE
        if not path.exists():
            return
        kept = [r for r in read_metrics(self.run_dir) if not _after(r, step)]
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def _after(record: dict[str, Any], step: int) -> bool:
    value = record.get("step")
    return isinstance(value, (int, float)) and value > step
