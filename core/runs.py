"""Run folders: where a training run writes, and how runs are found and summarised.

A run lives in `runs/<session-name>/<run-id>/` (the id is its start time, `20250101-120000`):

    session.toml     the session as it was when the run started (frozen)
    tokenizer.json   the tokenizer, so the run can always decode its own ids
    run.json         info about the run (arch, params, status, best step...), rewritten atomically
    metrics.jsonl    one JSON record per line: {"type": "train" | "eval" | ..., "step": ...}
    checkpoints/     step-0000500/ folders (see core.checkpoint)

`RunWriter` (core/run_writer.py) is the one place a run writes. Under torchrun every rank
builds one, and only rank 0's is enabled, so the other ranks' writes are no-ops and nothing
is written twice.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import stat
import statistics
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from core.errors import LlmlabError, disk_fault
from core.fileio import (
    METRICS_FILE_LIMIT,
    atomic_write_text,
    jsonable,
    read_small_file,
    read_small_text,
)
from core.run_claim import read_heartbeat
from core.session import Session, load_session

# (listing and finding runs must not import torch: the UI process never does)

SESSION_FILE = "session.toml"
INFO_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"
COMPRESSED_META = "compressed.json"  # marks a compressed-model folder (core.compressed)
RUN_ID_FORMAT = "%Y%m%d-%H%M%S"
# A checkpoint is complete when its step folder has these files: weights, optimizer/RNG
# state, metadata (core.checkpoint writes them; listing runs must not import torch).
CHECKPOINT_FILES = ("model.safetensors", "state.pt", "meta.json")
_STEP_DIR = re.compile(r"step-(\d{7,})")
# What a run says when the process writing it is gone without saying how it ended (killed,
# a dropped SSH connection): with a checkpoint it can resume, without one only start again.
LOST = "lost"
PAUSED = "paused"  # a live job, paused (its heartbeat says so)
PEER_DIED = "stopped: a process of the job died"  # run.json status: a rank's death stopped it
LOST_NO_CHECKPOINT = "lost, no checkpoint"
DAMAGED = "damaged"  # a run folder whose own files cannot be read ("damaged: <cause>")


def new_run_dir(runs_root: Path, session_name: str, now: datetime | None = None) -> Path:
    """Create and return `runs_root/<session_name>/<start time>`, `-2`, `-3`... if taken.
    A runs folder the machine refuses (read-only, under a file, /proc) is a DiskFault."""
    parent = Path(runs_root) / session_name
    base = (now or datetime.now()).strftime(RUN_ID_FORMAT)
    n = 1
    try:
        parent.mkdir(parents=True, exist_ok=True)
        while True:
            run_dir = parent / (base if n == 1 else f"{base}-{n}")
            try:
                run_dir.mkdir()  # fails if taken, even by a run started at the same instant
                return run_dir
            except FileExistsError:
                n += 1
    except OSError as e:
        raise disk_fault(e, "create a run folder", f"train.runs_dir {runs_root}") from None


def check_runs_root(runs_root: Path) -> None:
    """Raise LlmlabError if a run could not be created under `runs_root`: it (or the nearest
    folder above it that exists, where the missing ones would be made) must be a writable
    folder. Cheap: nothing is created."""
    path = Path(runs_root).absolute()
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None:  # (not even the root exists: cannot happen on a real machine)
        raise LlmlabError(f"{path}: no such folder")
    if not existing.is_dir():
        raise LlmlabError(f"{existing}: not a folder" if existing == path
                          else f"{path}: cannot be created ({existing} is not a folder)")
    # (root passes os.access on a read-only mount: the mount's flag says it)
    read_only = hasattr(os, "statvfs") and bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    if read_only or not os.access(existing, os.W_OK | os.X_OK):
        why = "read-only file system" if read_only else "not writable"
        raise LlmlabError(f"{path}: {why}" if existing == path
                          else f"{path}: cannot be created ({existing}: {why})")


# --------------------------------------------------------------------------- reading

def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Every record of metrics.jsonl; lines that do not parse (a crash mid-write) are skipped."""
    try:
        data = read_small_file(Path(run_dir) / METRICS_FILE, METRICS_FILE_LIMIT)
    except OSError:
        return []
    records = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_run_info(run_dir: Path) -> dict[str, Any]:
    """run.json as a dict; {} if it is missing or damaged."""
    try:
        info = json.loads(read_small_text(Path(run_dir) / INFO_FILE))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def run_status(run_dir: Path, info: dict[str, Any] | None = None) -> str:
    """The run's status from run.json, told apart by the job's heartbeat (core.run_claim)
    while it says running: `PAUSED` when the live job is paused, and `LOST` (or
    `LOST_NO_CHECKPOINT`, when it has nothing to resume from) when its writer is gone: the
    heartbeat is stale, or on this host its pid is dead. A run without a heartbeat (older,
    or trained in-process by a library user) is lost only when its pid is known dead."""
    info = read_run_info(run_dir) if info is None else info
    status = str(info.get("status") or "unknown")
    if status != "running":
        return status
    alive = _writer_alive(info)
    beat = read_heartbeat(run_dir)
    if alive is not False and beat is not None and (beat.fresh() or alive):
        return PAUSED if beat.state == PAUSED and beat.fresh() else status
    if alive is not False and beat is None:
        return status
    return LOST if has_checkpoint(run_dir) else LOST_NO_CHECKPOINT


def _writer_alive(info: dict[str, Any]) -> bool | None:
    """Whether the process that marked the run running still lives (the pid is there and
    started when that one did); None: cannot tell (an older run without a pid, another
    host, or Windows, where signal 0 is not a probe)."""
    pid = info.get("pid")
    if (not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or os.name == "nt"
            or info.get("host") != socket.gethostname()):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of someone else's has the pid
        pass
    started = info.get("pid_start")
    return not (isinstance(started, int) and process_start(pid) not in (None, started))


def process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks after boot, Linux's /proc), so that a later
    process given the same pid is not taken for the run's writer; None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the name may hold ")"
    except (OSError, ValueError, IndexError):
        return None


def has_checkpoint(run_dir: Path) -> bool:
    """Whether the run has a complete checkpoint (what a resume needs)."""
    return bool(complete_checkpoints(Path(run_dir) / CHECKPOINTS_DIR))


def complete_checkpoints(ckpt_root: Path) -> list[tuple[int, Path]]:
    """(step, folder) of the complete checkpoints under `ckpt_root`, oldest first: step
    folders with every file; temporary and half-written ones do not count. Torch-free (what
    core.checkpoint lists, for the UI process)."""
    try:
        entries = list(Path(ckpt_root).iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        match = _STEP_DIR.fullmatch(entry.name)
        if match and entry.is_dir() and all((entry / f).is_file() for f in CHECKPOINT_FILES):
            found.append((int(match.group(1)), entry))
    return sorted(found)


def restart_session(run_dir: Path) -> Session:
    """The run's frozen session, set up to start a new run next to it (same runs folder and
    session name): how a run lost before its first checkpoint is started again."""
    run_dir = Path(run_dir).absolute()
    session = load_run_session(run_dir)
    session.train.runs_dir = str(run_dir.parent.parent)
    return session


def set_run_label(run_dir: Path, name: str | None = None, notes: str | None = None
                  ) -> dict[str, Any]:
    """Give a run a name and/or notes (None leaves one as it is; "" clears it), kept in its
    run.json, rewritten atomically (a running training's writer reads them back before each
    of its own updates). Returns the new run.json."""
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise LlmlabError(f"{run_dir}: not a run folder (no run.json nor session.toml)")
    info = read_run_info(run_dir)
    for key, value in (("name", name), ("notes", notes)):
        if value is None:
            continue
        value = " ".join(value.split()) if key == "name" else value.strip()
        if value:
            info[key] = value
        else:
            info.pop(key, None)
    atomic_write_text(run_dir / INFO_FILE, json.dumps(info, indent=2, default=jsonable) + "\n")
    return info


def hparam_diff(run_dirs: list[Path]) -> list[tuple[str, list[Any]]]:
    """The session fields whose values differ between the runs (their frozen sessions, every
    default filled in, so a field one file leaves out is not a difference): (dotted field,
    one value per run), in the session's order. A run whose session cannot be read has None
    for every field."""
    tables = [_flat_session(Path(d)) for d in run_dirs]
    diff = []
    for key in dict.fromkeys(key for table in tables for key in table):
        values = [table.get(key) for table in tables]
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1:
            diff.append((key, values))
    return diff


def _flat_session(run_dir: Path) -> dict[str, Any]:
    try:
        table = load_run_session(run_dir).to_dict()
    except LlmlabError:
        table = _frozen_session_table(run_dir)
    return _flatten(table)


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def load_run_session(run_dir: Path) -> Session:
    """The session a run was started with (its frozen copy), relative paths from the run."""
    session = load_session(Path(run_dir) / SESSION_FILE)
    session.base_dir = Path(run_dir)
    return session


def is_compressed_model(path: Path) -> bool:
    """A folder written by core.compressed.save_compressed (a pruned or int8 model)."""
    return (Path(path) / COMPRESSED_META).is_file()


def is_run_dir(path: Path) -> bool:
    """A folder with a run.json (of any kind: a damaged one is still a run, shown as damaged)
    or a session.toml."""
    return path.is_dir() and (os.path.lexists(path / INFO_FILE)
                              or (path / SESSION_FILE).is_file())


# --------------------------------------------------------------------------- listing

@dataclass
class RunSummary:
    path: Path
    session: str
    run_id: str
    created: str
    arch: str
    params: int
    steps: int
    max_steps: int
    best_val_loss: float | None
    tokens_per_s: float | None
    status: str
    name: str = ""  # the user's name for the run (run.json), "" if none
    notes: str = ""  # the user's notes on the run (run.json)
    folds: tuple[str, int, int] | None = None  # (group, fold, of) of a fold's run (core.folds)
    world_size: int = 1  # processes of the job (torchrun); tokens_per_s counts them all

    @property
    def model(self) -> str:
        """The architecture, with the job's processes when there were several: 'gpt×2'."""
        return self.arch if self.world_size <= 1 else f"{self.arch}×{self.world_size}"


def run_damage(run_dir: Path) -> str | None:
    """Why a run's own files cannot be read (run.json not a regular JSON object file,
    metrics.jsonl not a regular file or too large), or None. A missing file is not damage:
    a run starts without metrics, and an old run may have only its session."""
    info_path, metrics_path = Path(run_dir) / INFO_FILE, Path(run_dir) / METRICS_FILE
    try:
        if os.path.lexists(info_path):
            try:
                info = json.loads(read_small_text(info_path))
            except ValueError:
                return f"{INFO_FILE}: not JSON"
            if not isinstance(info, dict):
                return f"{INFO_FILE}: not a JSON object"
        if os.path.lexists(metrics_path):  # checked, not read: it may be large
            st = os.stat(metrics_path)
            if not stat.S_ISREG(st.st_mode):
                return f"{METRICS_FILE}: not a regular file"
            if st.st_size > METRICS_FILE_LIMIT:
                return f"{METRICS_FILE}: {st.st_size:,} bytes, more than {METRICS_FILE_LIMIT:,}"
    except OSError as e:
        return _os_error_in(e, run_dir)
    return None


def _os_error_in(e: OSError, run_dir: Path) -> str:
    """An OSError about a file of `run_dir` as `name: cause`, without the folder's path."""
    text = str(e).replace(f"{run_dir}/", "").replace(f"'{run_dir}", "'")
    return text.splitlines()[0] if text else type(e).__name__


def summarize_run(run_dir: Path) -> RunSummary:
    """One line's worth about a run, from run.json, metrics.jsonl and the frozen session.
    A run whose files cannot be read is summarized as "damaged: <cause>", never raised."""
    run_dir = Path(run_dir)
    damage = run_damage(run_dir)
    try:
        summary = _summarize(run_dir)
    except Exception as e:  # noqa: BLE001 (one odd folder never hides the others)
        damage = damage or f"{type(e).__name__}: {e}".splitlines()[0]
        summary = RunSummary(path=run_dir, session=run_dir.parent.name, run_id=run_dir.name,
                             created="", arch="?", params=0, steps=0, max_steps=0,
                             best_val_loss=None, tokens_per_s=None, status="")
    if damage is not None:
        summary.status = f"{DAMAGED}: {damage}"
    return summary


def _summarize(run_dir: Path) -> RunSummary:
    """One row of the runs table. A long run's train records are thinned evenly as they are
    read (core.follow.read_thinned): its median tokens/s is that of every k-th step, and a
    run of a million steps costs a list of runs a second, not gigabytes."""
    from core.folds import run_fold
    from core.follow import MetricsTail, read_thinned

    info = read_run_info(run_dir)
    records, _ = read_thinned(MetricsTail(run_dir / METRICS_FILE))
    train = [r for r in records if r.get("type") == "train"]
    frozen = _frozen_session_table(run_dir) if not {"arch", "max_steps"} <= info.keys() else {}
    speeds = [r["tokens_per_s"] for r in train if _is_number(r.get("tokens_per_s"))]
    steps = train[-1].get("step") if train else info.get("step")
    best = info.get("best_val_loss")
    return RunSummary(
        path=run_dir,
        session=str(info.get("session") or run_dir.parent.name),
        run_id=run_dir.name,
        created=str(info.get("created") or _created_from_id(run_dir)),
        arch=str(info.get("arch") or frozen.get("model", {}).get("arch", "?")),
        params=_int(info.get("params")),
        steps=_int(steps),
        max_steps=_int(info.get("max_steps") or frozen.get("train", {}).get("max_steps")),
        best_val_loss=float(best) if _is_number(best) else None,
        tokens_per_s=statistics.median(speeds) if speeds else None,
        status=run_status(run_dir, info),
        name=str(info.get("name") or ""),
        notes=str(info.get("notes") or ""),
        world_size=max(1, _int(info.get("world_size", 1))),
        folds=run_fold(info),
    )


def list_runs(runs_root: Path, session: str | None = None) -> list[RunSummary]:
    """Runs under `runs_root` (or only `session`'s), newest first; other folders are skipped."""
    runs_root = Path(runs_root)
    parents = [runs_root / session] if session is not None else _subdirs(runs_root)
    summaries = [summarize_run(run_dir) for parent in parents for run_dir in _subdirs(parent)
                 if is_run_dir(run_dir)]
    return sorted(summaries, key=lambda s: (s.created, s.run_id), reverse=True)


def export_csv(run_dirs: list[Path], path: Path) -> int:
    """Every metrics record of `run_dirs` as one CSV (a `run` column, `session/run-id`, then
    the union of the records' fields), for a spreadsheet or pandas; returns the rows written."""
    import csv
    import io

    rows = [{"run": f"{Path(run_dir).parent.name}/{Path(run_dir).name}", **record}
            for run_dir in run_dirs for record in read_metrics(run_dir)]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
    return len(rows)


def find_run(spec: str, runs_root: Path) -> Path:
    """The run folder that `spec` names: a path to a run folder, `<session>/<run-id>`,
    `<session>` (its newest run) or `latest` (the newest of all); a damaged run is never
    the newest."""
    runs_root = Path(runs_root)
    if not spec.strip():
        raise LlmlabError("no run given (a run folder, <session>/<run-id>, <session> or latest)")
    if spec == "latest":
        runs = [r for r in list_runs(runs_root) if not r.status.startswith(DAMAGED)]
        if runs:
            return runs[0].path
        raise LlmlabError(f"latest: no runs in {runs_root}")
    for candidate in (Path(spec).expanduser(), runs_root / spec):
        if candidate != Path(spec).expanduser() and not _inside(candidate, runs_root):
            raise LlmlabError(f"{spec}: not a run inside {runs_root} (give a path to a run "
                              "folder, <session>/<run-id>, <session> or latest)")
        if is_run_dir(candidate):
            return candidate
        newest = newest_run(candidate.parent, candidate.name)
        if newest is not None:
            return newest
    raise LlmlabError(f"{spec}: no such run (give a run folder, <session>/<run-id>, "
                      f"<session> or latest; runs are in {runs_root})")


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path`, its ".." taken literally, stays under `folder` (a spec like
    `s/../../elsewhere` must not reach a run outside the runs folder)."""
    inner, outer = os.path.abspath(path), os.path.abspath(folder)
    return inner != outer and inner.startswith(outer.rstrip(os.sep) + os.sep)


def newest_run(runs_root: Path, session: str) -> Path | None:
    """The newest run of `session`, in list_runs' order, from the run.json files alone
    (list_runs also reads every run's metrics: too slow for a key press)."""
    runs = [p for p in _subdirs(Path(runs_root) / session)
            if is_run_dir(p) and run_damage(p) is None]
    return max(runs, key=_started, default=None)


def _started(run_dir: Path) -> tuple[str, str]:
    """What runs are ordered by: the start time (run.json, else the run id), then the id."""
    return str(read_run_info(run_dir).get("created") or _created_from_id(run_dir)), run_dir.name


def _subdirs(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return []


def _frozen_session_table(run_dir: Path) -> dict[str, Any]:
    """The raw frozen session (no validation: a summary should show even an odd run)."""
    try:
        return tomllib.loads(read_small_text(run_dir / SESSION_FILE))
    except (OSError, ValueError):
        return {}


def _created_from_id(run_dir: Path) -> str:
    """The start time from a run id like 20250101-120000[-2], else the folder's mtime."""
    try:
        when = datetime.strptime(run_dir.name[:15], RUN_ID_FORMAT)
    except ValueError:
        when = datetime.fromtimestamp(run_dir.stat().st_mtime)
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def _int(value: Any) -> int:
    return int(value) if _is_number(value) else 0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
