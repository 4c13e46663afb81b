"""Following a run folder: a training job's records turned into the engine's events.

The app does not own the trainings it shows: a job (`llmlab train`, started by the app, by a
user in another terminal, or on another machine with a shared filesystem) writes its run
folder, and any number of viewers follow it. `RunFollower` reads the folder the way `tail -f`
reads a log: `attach()` once (the run so far, thinned to what a plot can show), then `poll()`
as often as the screen wants, which reads only the bytes added since, and returns the same
events (core.messages) the in-process engine would have sent: StepMetrics, EvalMetrics,
EvalSample, HparamChanged, CheckpointSaved, SparsityChanged, Warning, Status, Error. Torch-free:
the UI process uses it.

A job's state comes from its heartbeat (core.run_claim) while it lives and from run.json once it
ended; a run that says running but whose heartbeat went stale is `lost`.
"""

from __future__ import annotations

import heapq
import json
import math
import os
from dataclasses import dataclass, field
from itertools import compress
from pathlib import Path
from typing import Any

from core import messages as msg
from core.run_claim import read_heartbeat
from core.runs import INFO_FILE, LOST, LOST_NO_CHECKPOINT, METRICS_FILE, read_run_info, run_status
from core.values import EngineState

CHUNK = 8 << 20  # bytes read at a time
ATTACH_POINTS = 20_000  # train records kept at attach: a plot 200 columns wide needs 100x less
TRAIN_PREFIX = b'{"type": "train"'  # how RunWriter writes a train record (json.dumps)


@dataclass
class Attached:
    """A run as it was when a viewer attached: run.json, and its records so far (every
    record, except that a long run's train records are thinned evenly, the last one kept)."""

    run_dir: Path
    info: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    train_records: int = 0  # how many there were before thinning

    def started_event(self) -> msg.RunStarted:
        info, last = self.info, self.last_step()
        return msg.RunStarted(
            run_dir=str(self.run_dir), arch=str(info.get("arch", "")),
            params=_int(info.get("params")), flops_per_token=_int(info.get("flops_per_token")),
            vocab_size=_int(info.get("vocab_size")), max_steps=_int(info.get("max_steps")),
            start_step=last, device=str(info.get("device", "")),
            precision=str(info.get("precision", "")),
            world_size=max(1, _int(info.get("world_size", 1))),
            global_batch=_int(info.get("global_batch")))

    def last_step(self) -> int:
        steps = [r.get("step") for r in self.records if r.get("type") == "train"]
        return _int(steps[-1]) if steps else 0


class MetricsTail:
    """metrics.jsonl read a piece at a time: complete lines only, never a byte twice. If the
    file is replaced or shrinks (a resume rewrites it without the steps it will redo), the
    next read starts over and says so."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0
        self._inode: int | None = None
        self._partial = b""

    def skip_to_end(self) -> None:
        """Read from now on only what is added (a controller waiting for its answer): the
        file so far is not read at all, however long the run. A line being written at the
        end comes back as its rest, which parses as nothing."""
        try:
            st = os.stat(self.path)
        except OSError:
            return
        self.offset, self._inode, self._partial = st.st_size, st.st_ino, b""

    def read_lines(self, limit: int = 64 << 20) -> tuple[list[bytes], bool]:
        """(the complete lines added since the last read, at most about `limit` bytes of
        them; whether the file started over)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return [], False
        restarted = self._inode is not None and (st.st_ino != self._inode
                                                 or st.st_size < self.offset)
        if restarted:
            self.offset, self._partial = 0, b""
        self._inode = st.st_ino
        if st.st_size <= self.offset:
            return [], restarted
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(min(st.st_size - self.offset, limit))
        except OSError:
            return [], restarted
        self.offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # (the last piece has no newline yet: kept for later)
        return (lines if b"" not in lines else [line for line in lines if line]), restarted


class RunFollower:
    """One viewer's view of one run folder."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.tail = MetricsTail(self.run_dir / METRICS_FILE)
        self.info: dict[str, Any] = {}
        self.state: str | None = None
        self._info_seen: tuple[int, int] | None = None

    # ------------------------------------------------------------------ attach

    def attach(self, points: int = ATTACH_POINTS) -> Attached | None:
        """The run so far; None while the job has not written run.json yet."""
        info = read_run_info(self.run_dir)
        if not info:
            return None
        self.info = info
        self.tail = MetricsTail(self.run_dir / METRICS_FILE)
        records, train_count = read_thinned(self.tail, points)
        return Attached(self.run_dir, info, records, train_count)

    # ------------------------------------------------------------------ follow

    def poll(self, state: bool = True) -> list[msg.Event]:
        """The events since the last poll: new records, then a change of the job's state
        (`state` False: not looked at this time; it costs two small reads)."""
        events: list[msg.Event] = []
        lines, restarted = self.tail.read_lines()
        if restarted:  # (resumed: the steps after its checkpoint are redone)
            self.state = None
            self.info = read_run_info(self.run_dir) or self.info
            attached = Attached(self.run_dir, self.info)
            events.append(attached.started_event())
        answered = False  # (a request was answered: a pause or stop changes the state now)
        for line in lines:
            record = _parse(line)
            if record is None:
                continue
            answered = answered or record.get("type") == "control"
            if record.get("type") == "train" and self.state == "preparing":
                # A step was logged: the job runs, whatever its next heartbeat will say (so
                # no viewer sees steps of a run still "preparing").
                self.state = "running"
                events.append(msg.Status(EngineState.RUNNING, ""))
            if (event := record_event(record, self.info)) is not None:
                events.append(event)
        if state or restarted or answered:
            events += self._state_events()
        return events

    def _state_events(self) -> list[msg.Event]:
        state, detail, error = self.job_state()
        if state == self.state or (state == "preparing" and self.state == "running"):
            return []  # (a heartbeat older than the steps already read says nothing new)
        self.state = state
        events: list[msg.Event] = []
        if error:
            events.append(msg.Error(error, fatal=True))
        known = state in set(EngineState)
        events.append(msg.Status(EngineState(state) if known else EngineState.STOPPED, detail))
        return events

    def job_state(self) -> tuple[str, str, str]:
        """(the job's state, a detail for the log, the error line of a failed run)."""
        self._reread_info()
        status = run_status(self.run_dir, self.info)
        step, max_steps = _int(self.info.get("step")), _int(self.info.get("max_steps"))
        if status in (LOST, LOST_NO_CHECKPOINT):
            beat = read_heartbeat(self.run_dir)
            seen = f"; last heartbeat {beat.age():.0f} s ago" if beat else ""
            return LOST, f"{status}: the job writing it is gone{seen}", ""
        if status in ("running", "paused"):
            beat = read_heartbeat(self.run_dir)
            state = beat.state if beat is not None and beat.state else status
            return state, f"{beat.who()}" if beat else "", ""
        if status.startswith("stopped"):
            return "stopped", f"at step {step} of {max_steps}", ""
        if status == "failed":
            return "failed", "", str(self.info.get("error") or "the job failed")
        return status, f"at step {step} of {max_steps}", ""

    def _reread_info(self) -> None:
        """run.json again, if it changed (a stat per poll, a read per change)."""
        try:
            st = os.stat(self.run_dir / INFO_FILE)
        except OSError:
            return
        seen = (st.st_mtime_ns, st.st_size)
        if seen != self._info_seen:
            self._info_seen = seen
            self.info = read_run_info(self.run_dir) or self.info



def read_thinned(tail: MetricsTail, points: int = ATTACH_POINTS
                 ) -> tuple[list[dict[str, Any]], int]:
    """Every record `tail` has not read yet, the train records thinned: keep every k-th,
    doubling k (and dropping every other one kept) whenever more than 2 x `points` are kept;
    the latest step always kept. Also the number of train records before thinning. Lines are
    sorted and thinned as bytes, and only those kept are parsed: a run of a million steps
    parses a few ten thousand lines, not a million."""
    train: list[tuple[int, bytes]] = []  # (train index, line), kept
    others: list[tuple[int, bytes]] = []  # (train lines before it, line)
    every, count, last = 1, 0, b""
    while True:
        lines, _ = tail.read_lines(CHUNK)
        if not lines:
            break
        is_train = [line.startswith(TRAIN_PREFIX) for line in lines]
        others += [(count + i - k, lines[i])
                   for k, i in enumerate(i for i, t in enumerate(is_train) if not t)]
        new = list(compress(lines, is_train))
        if not new:
            continue
        first = -count % every  # (the first of these whose index is a multiple of k)
        train += [(count + j, new[j]) for j in range(first, len(new), every)]
        count, last = count + len(new), new[-1]
        while len(train) > 2 * points:
            every *= 2
            train = [(i, line) for i, line in train if i % every == 0]
    if count and (count - 1) % every:
        train.append((count - 1, last))  # (the latest step is always shown)
    merged = heapq.merge(((2 * m, line) for m, line in others),
                         ((2 * i + 1, line) for i, line in train))
    return _parse_many([line for _, line in merged]), count


def record_event(r: dict[str, Any], info: dict[str, Any]) -> msg.Event | None:
    """The engine event a metrics.jsonl record stands for (None: none, or a damaged one)."""
    kind, step = r.get("type"), r.get("step")
    if not _number(step):
        return None
    step = int(step)
    if kind == "train" and all(_number(r.get(k)) for k in ("loss", "lr")):
        return msg.StepMetrics(step, _int(r.get("tokens")), r["loss"], r["lr"],
                               _float(r.get("grad_norm")), _float(r.get("tokens_per_s")),
                               _float(r.get("mfu")), _float(r.get("elapsed")),
                               max_steps=_int(info.get("max_steps")))
    if kind == "eval":
        split = str(r.get("split", "val"))
        loss = r.get(f"{split}_loss")
        if not _number(loss):
            return None
        return msg.EvalMetrics(step, split, loss, _float(r.get(f"{split}_ppl"),
                                                         math.exp(min(loss, 50))),
                               _float(r.get(f"{split}_top1")), _float(r.get(f"{split}_top5")))
    if kind == "sample":
        return msg.EvalSample(step, str(r.get("prompt", "")), str(r.get("text", "")))
    if kind == "hparam" and _number(r.get("old")) and _number(r.get("new")):
        return msg.HparamChanged(step, str(r.get("name", "")), r["old"], r["new"])
    if kind == "checkpoint":
        return msg.CheckpointSaved(step, str(r.get("path", "")), bool(r.get("best")))
    if kind == "prune" and _number(r.get("target")) and _number(r.get("sparsity")):
        return msg.SparsityChanged(step, r["target"], r["sparsity"])
    if kind == "warning":
        return msg.Warning(str(r.get("message", "")))
    if kind == "restart":
        return msg.Warning(f"step {step}: a process of the job died; torchrun restarted them "
                           f"(restart {_int(r.get('attempt'))}), from this checkpoint")
    if kind == "control" and r.get("ok") is False:
        what = r.get("op", "request")
        if what == "set":
            what = f"{r.get('name', '')}={r.get('value', '')}"
        return msg.Error(f"{what}: refused by the job: {r.get('reason', '')}", fatal=False)
    return None


def _parse_many(lines: list[bytes]) -> list[dict[str, Any]]:
    """The records of `lines` that parse, in one call of the JSON decoder when every line is
    one object (as RunWriter writes them); line by line otherwise (a damaged line)."""
    if all(line.startswith(b"{") and line.endswith(b"}") for line in lines):
        try:
            records = json.loads(b"[" + b",".join(lines) + b"]")
        except ValueError:
            pass
        else:
            if len(records) == len(lines):
                return [r for r in records if isinstance(r, dict)]
    return [r for line in lines if (r := _parse(line)) is not None]


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def _float(value: Any, default: float = 0.0) -> float:
    return float(value) if _number(value) else default


def _int(value: Any) -> int:
    return int(value) if _number(value) else 0
