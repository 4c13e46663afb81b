"""The run folder's control channel: how any process steers a training job it did not start.

A controller (the app, `llmlab ctl`, a sweep) writes one small JSON file per request into the
run's `control/` folder; the job takes them in order at its next step boundary, applies each,
and acknowledges it with a record in metrics.jsonl. Files, not a socket: whatever can write the
folder can steer the job, from another terminal or another machine on a shared filesystem, and
nothing is lost while the job is busy (a request waits in the folder).

    control/<time_ns>-<host>-<pid>-<random>.json
        {"id": "...", "op": "pause" | "resume" | "stop" | "checkpoint" | "set",
         "name": "optim.lr", "value": 0.0003, "sent": 1733300000.0}

A request is written to a dot-file and renamed into place, so the job never reads half of
one. The acknowledgement, in metrics.jsonl:

    {"type": "control", "id": "...", "op": "set", "name": "optim.lr", "value": 0.0003,
     "ok": true | false, "reason": "one line, when refused", "step": 120, "time": ...}

A `set` that is applied also writes its usual `hparam` record (the step it applies from).
"""

from __future__ import annotations

import errno
import json
import math
import os
import secrets
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import messages as msg
from core.errors import LlmlabError
from core.session import LIVE_FIELDS
from core.text import one_line

CONTROL_DIR = "control"
OPS = ("pause", "resume", "stop", "checkpoint", "set")
REQUEST_LIMIT = 4096  # bytes: a request is one small JSON object


@dataclass(frozen=True)
class ControlRequest:
    id: str
    op: str
    name: str = ""
    value: float | None = None
    sent: float = 0.0

    def describe(self) -> str:
        return f"set {self.name}={self.value:g}" if self.op == "set" else self.op

    def command(self) -> msg.Command:
        """The engine command this request asks for (core.messages)."""
        if self.op == "set":
            assert self.value is not None
            return msg.SetHparam(self.name, self.value)
        return {"pause": msg.Pause, "resume": msg.Resume, "stop": msg.Stop,
                "checkpoint": msg.SaveCheckpoint}[self.op]()


def check_live_value(name: str, value: Any) -> float | int:
    """`value` as live hyperparameter `name` takes it, or LlmlabError saying why not."""
    if name not in LIVE_FIELDS:
        raise LlmlabError(f"{name}: cannot change while training "
                          f"(live: {', '.join(LIVE_FIELDS)}); stop and restart instead")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise LlmlabError(f"{name}: must be a finite number (got {value!r})")
    if name == "optim.lr" and value <= 0:
        raise LlmlabError(f"{name}: must be > 0 (got {value:g})")
    if value < 0:
        raise LlmlabError(f"{name}: must be >= 0 (got {value:g})")
    if name == "train.eval_interval":
        if not float(value).is_integer():
            raise LlmlabError(f"{name}: must be a whole number (got {value:g})")
        return int(value)
    return float(value)


def make_request(op: str, name: str = "", value: Any = None) -> ControlRequest:
    """A checked request (LlmlabError if it could never be applied)."""
    if op not in OPS:
        raise LlmlabError(f"{op}: not a control ({', '.join(OPS)})")
    if op == "set":
        value = check_live_value(name, value)
    elif name or value is not None:
        raise LlmlabError(f"{op}: takes no value")
    rid = f"{time.time_ns():020d}-{_safe(socket.gethostname())}-{os.getpid()}-" \
          f"{secrets.token_hex(3)}"
    return ControlRequest(rid, op, name, value, time.time())


def send_control(run_dir: Path, request: ControlRequest) -> Path:
    """Put `request` into the run's control folder; the path it was written to."""
    folder = Path(run_dir) / CONTROL_DIR
    try:
        folder.mkdir(exist_ok=True)
        body = {"id": request.id, "op": request.op, "sent": request.sent}
        if request.op == "set":
            body.update(name=request.name, value=request.value)
        tmp = folder / f".{request.id}.tmp"
        tmp.write_text(json.dumps(body) + "\n", encoding="utf-8")
        path = folder / f"{request.id}.json"
        os.replace(tmp, path)
    except OSError as e:
        raise LlmlabError(f"{folder}: cannot write a control request "
                          f"({e.strerror or e})") from None
    return path


def ack_record(request: ControlRequest, step: int, problem: str | None) -> dict[str, Any]:
    """The metrics.jsonl record that answers `request` (`problem`: why it was refused)."""
    record: dict[str, Any] = {"type": "control", "id": request.id, "op": request.op,
                              "ok": problem is None, "step": step, "time": time.time()}
    if request.op == "set":
        record.update(name=request.name, value=request.value)
    if problem is not None:
        record["reason"] = one_line(problem)
    return record


class ControlInbox:
    """The job's end of the channel: the requests waiting in the folder, oldest first.
    `started`: when the job's process started (default: this process's start); a request
    sent before it was meant for an earlier job (`refuse_waiting`)."""

    def __init__(self, run_dir: Path, every: float = 0.1, started: float | None = None):
        self.folder = Path(run_dir) / CONTROL_DIR
        self.every = every  # seconds between looks at the folder (a listdir per step is waste)
        self.started = process_started() if started is None else started
        self._last_look = 0.0
        self._pending: list[ControlRequest | tuple[str, str]] = []  # taken, not yet answered
        self._kept: set[str] = set()  # answered, but could not be removed (a folder...)

    def take(self, force: bool = False) -> list[ControlRequest | tuple[str, str]]:
        """The waiting requests, removed from the folder. A file that is not a request (not
        JSON, an unknown op, a bad value, a symlink...) comes back as (its id, why), to be
        refused with that line."""
        now = time.monotonic()
        if not force and now - self._last_look < self.every and not self._pending:
            return []
        self._last_look = now
        taken, self._pending = self._pending, []
        try:
            names = sorted(n for n in os.listdir(self.folder)
                           if n.endswith(".json") and not n.startswith(".")
                           and n not in self._kept)
        except OSError:
            return taken
        for name in names:
            path = self.folder / name
            taken.append(_read_request(path))
            try:
                path.unlink()
            except OSError:  # (answered once, not at every step from now on)
                self._kept.add(name)
        return taken

    def refuse_waiting(self, why: str) -> list[tuple[ControlRequest, str]]:
        """(request, why) for each waiting request sent before this job started, and each
        file that is not a request (as an op "unknown"): requests sent to a job that had
        ended are not applied to the next one. Those sent since (a launcher steering the job
        it just started) stay for the next `take`."""
        refused: list[tuple[ControlRequest, str]] = []
        for r in self.take(force=True):
            if not isinstance(r, ControlRequest):
                refused.append((ControlRequest(r[0], "unknown"), r[1]))
            elif r.sent < self.started:
                refused.append((r, why))
            else:
                self._pending.append(r)
        return refused


def process_started() -> float:
    """When this process started, by the wall clock. Linux: its start in /proc (clock ticks
    since boot) against the clock since boot now, so to a tick (/proc/stat's boot time is
    only to the second: a request sent half a second before the job started passed for its
    own). Elsewhere: when this module was imported, which a job does before it looks at its
    control folder."""
    from core.runs import process_start

    ticks = process_start(os.getpid())
    try:
        if ticks is not None:
            since_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
            return time.time() - (since_boot - ticks / os.sysconf("SC_CLK_TCK"))
    except (AttributeError, OSError, ValueError):
        pass
    return _IMPORTED


_IMPORTED = time.time()


def _read_request(path: Path) -> ControlRequest | tuple[str, str]:
    rid = path.name[: -len(".json")]
    try:
        text = _read_small(path)
        if text is None:
            return rid, f"control file {path.name}: not a regular file"
        if len(text) > REQUEST_LIMIT:
            return rid, f"control file {path.name}: over {REQUEST_LIMIT} bytes, not a request"
        data = json.loads(text.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not an object")
        request = make_request(str(data.get("op", "")), str(data.get("name", "")),
                               data.get("value"))
        return ControlRequest(str(data.get("id") or rid), request.op, request.name,
                              request.value, float(data.get("sent") or 0.0))
    except LlmlabError as e:
        return rid, str(e)
    except (OSError, ValueError, TypeError) as e:
        return rid, f"control file {path.name}: not a request ({e})"


def _read_small(path: Path) -> bytes | None:
    """At most REQUEST_LIMIT + 1 bytes of the regular file `path`; None if it is anything
    else. Opened without following a link and without blocking (a FIFO), and checked on the
    open descriptor: a link swapped in after a look at the name cannot get past."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            return None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, REQUEST_LIMIT + 1)
    finally:
        os.close(fd)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:40] or "host"
