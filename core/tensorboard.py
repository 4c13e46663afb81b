"""TensorBoard event files from a run's metrics, so `tensorboard --logdir runs` shows llmlab
runs beside any others.

One mapping from a metrics.jsonl record to TensorBoard summaries (`summaries`) serves both
ways of getting them:

- live: with `train.tensorboard = true` the run's writer (`core.run_writer.RunWriter`) hands every
  record it logs to a `TensorBoardLog` in the run folder as well;
- afterwards: `export_tensorboard` replays a run's metrics.jsonl into a folder of its own
  (`llmlab export RUN --format tensorboard DIR`).

Written with tensorboardX, a light writer (protobuf and numpy, no TensorFlow). Tags:
`train/loss`, `train/lr`, `train/grad_norm`, `train/tokens_per_s`, `train/mfu`;
`val/loss`, `val/ppl`, `val/top1`, `val/top5` (and `test/...`); `prune/sparsity`,
`prune/target`; `hparam/<field>` for a live change; the text `sample` for the model's text at
each evaluation. The step is the run's optimizer step and the wall time the record's own.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from core.errors import LlmlabError

TRAIN_SCALARS = ("loss", "lr", "grad_norm", "tokens_per_s", "mfu")
EVAL_SCALARS = ("loss", "ppl", "top1", "top5")
NO_WRITER = "train.tensorboard: needs tensorboardX (pip install tensorboardX)"


def summaries(record: dict[str, Any]) -> tuple[list[tuple[str, float]], list[tuple[str, str]]]:
    """The (tag, value) scalars and (tag, text) texts of one metrics record; none for a record
    of another type, and a value that is not a number (a damaged record) is left out."""
    kind = record.get("type")
    scalars: list[tuple[str, Any]] = []
    texts: list[tuple[str, str]] = []
    if kind == "train":
        scalars = [(f"train/{key}", record.get(key)) for key in TRAIN_SCALARS]
    elif kind == "eval" and isinstance(record.get("split"), str):
        split = record["split"]
        scalars = [(f"{split}/{key}", record.get(f"{split}_{key}")) for key in EVAL_SCALARS]
    elif kind == "prune":
        scalars = [("prune/sparsity", record.get("sparsity")),
                   ("prune/target", record.get("target"))]
    elif kind == "hparam" and isinstance(record.get("name"), str):
        scalars = [(f"hparam/{record['name']}", record.get("new"))]
    elif kind == "sample":
        prompt, text = record.get("prompt"), record.get("text")
        if isinstance(prompt, str) and isinstance(text, str):
            # TensorBoard shows text as Markdown: indented, it is shown as it is.
            texts = [("sample", "\n".join("    " + line
                                           for line in (prompt + text).splitlines()))]
    numbers = [(tag, float(v)) for tag, v in scalars if _is_number(v)]
    return numbers, texts


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_writer() -> None:
    """One line when tensorboardX, which `train.tensorboard` needs, is not installed."""
    import importlib.util

    if importlib.util.find_spec("tensorboardX") is None:
        raise LlmlabError(NO_WRITER)


class TensorBoardLog:
    """An event file in `folder`, fed metrics records; each record is on disk (flushed) when
    `write` returns.

    tensorboardX's `SummaryWriter` queues events to a thread of its own (and a multiprocessing
    queue's feeder thread); here the events go straight to its `EventsWriter`: no threads in a
    training process, and a write the disk refuses raises where it happens, like the
    metrics.jsonl line beside it. `purge_step`: on a resumed run, the first step trained again;
    a START marker there makes TensorBoard hide what the stopped run had logged from that step
    on (those steps are redone), as `SummaryWriter(purge_step=...)` does.
    """

    def __init__(self, folder: Path, purge_step: int | None = None) -> None:
        try:
            from tensorboardX.event_file_writer import EventsWriter
            from tensorboardX.proto.event_pb2 import Event, SessionLog
        except ImportError:
            raise LlmlabError(NO_WRITER) from None
        self._event = Event
        # The file is named after the second it was made and the host, and TensorBoard reads
        # a folder's files in name order: the nanoseconds after them keep a resume within the
        # same second from truncating the stopped run's file, and in order after it.
        self._events = EventsWriter(str(Path(folder) / "events"),
                                    filename_suffix=f".{time.time_ns() % 10**9:09d}")
        if purge_step is not None:
            self._events.write_event(Event(step=purge_step, wall_time=time.time(),
                                           session_log=SessionLog(status=SessionLog.START)))
        self._events.flush()
        self.scalars = 0

    def write(self, record: dict[str, Any]) -> None:
        from tensorboardX import summary

        step = record.get("step")
        scalars, texts = summaries(record)
        if not _is_number(step) or not (scalars or texts):
            return
        when = record.get("time")
        wall_time = float(when) if _is_number(when) and math.isfinite(when) else time.time()
        made = [summary.scalar(tag, value) for tag, value in scalars]
        made += [summary.text(tag, text) for tag, text in texts]
        for one in made:
            self._events.write_event(self._event(step=int(step), wall_time=wall_time,
                                                 summary=one))
        self._events.flush()
        self.scalars += len(scalars)

    def close(self) -> None:
        self._events.close()


def export_tensorboard(records: list[dict[str, Any]], folder: Path) -> int:
    """Write `records` (a run's metrics, in order) as an event file in `folder` (an existing,
    empty folder); the number of scalars written."""
    log = TensorBoardLog(folder)
    try:
        for record in records:
            log.write(record)
    finally:
        log.close()
    return log.scalars
