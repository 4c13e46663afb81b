"""Where a sweep's study is kept, and the list of them (`llmlab sweeps`), apart from how a
study runs (core/sweep.py).

A sweep's folder is `runs/<session>/sweep-<study>/`: `sweep.json` (which study, session and
storage) and, when `sweep.storage` is "", the Optuna journal file `journal.log` holding the
study (`optuna-dashboard PATH` reads it). With a storage URL the study is in that database,
and the folder only says where.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import LlmlabError
from core.session import Session
from core.text import one_line

SWEEP_PREFIX = "sweep-"
JOURNAL_FILE = "journal.log"
SWEEP_FILE = "sweep.json"
HEARTBEAT_S, GRACE_S = 30, 120  # a database storage's trial heartbeat, and when it is stale
STOP_ATTR = "llmlab_stop"  # a study's user attribute: a stop asked of its processes


@dataclass
class SweepInfo:
    """What `llmlab sweeps` lists: the sweep folder's sweep.json."""

    folder: Path
    study: str
    session: str
    storage: str
    created: str
    trials: int
    extra: dict[str, Any] = field(default_factory=dict)


def sweeps_root(session: Session) -> Path:
    return session.resolve(session.train.runs_dir) / session.name


def sweep_folder(session: Session, study: str) -> Path:
    return sweeps_root(session) / f"{SWEEP_PREFIX}{study}"


def open_storage(session: Session, folder: Path) -> Any:
    """The study's storage: `sweep.storage` (a URL) or the journal file in `folder`."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if session.sweep.storage:
        try:
            # (a worker that dies, here or on another machine, stops its heartbeat: Optuna
            # fails its running trials when the next trial starts, and they are replaced)
            return optuna.storages.RDBStorage(session.sweep.storage,
                                              heartbeat_interval=HEARTBEAT_S,
                                              grace_period=GRACE_S)
        except Exception as e:  # noqa: BLE001 (a driver missing, a server not answering, ...)
            raise LlmlabError(f"sweep.storage: cannot open {session.sweep.storage}: "
                              f"{one_line(str(e)).splitlines()[0][:200]}") from None
    return optuna.storages.JournalStorage(JournalFileBackend(str(folder / JOURNAL_FILE)))


def check_storage(session: Session) -> None:
    """`llmlab check`: the storage URL can be opened (an sqlite file's folder exists and is
    writable; any other database answers). LlmlabError with its line if not."""
    url = session.sweep.storage
    if not url:
        return
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):].partition("?")[0])
        path = path if path.is_absolute() else Path.cwd() / path
        if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
            raise LlmlabError(f"sweep.storage: cannot open {url}: {path.parent} is not a "
                              "writable folder")
        return
    try:
        import sqlalchemy

        with sqlalchemy.create_engine(url).connect():
            pass
    except Exception as e:  # noqa: BLE001 (a driver missing, a server not answering, ...)
        raise LlmlabError(f"sweep.storage: cannot open {url}: "
                          f"{one_line(str(e)).splitlines()[0][:200]}") from None


def interrupted(t: Any) -> bool:
    """Whether a trial failed because its sweep stopped or died, not for a reason of its own:
    marked so by the sweep, or failed by Optuna itself (its worker's heartbeat went stale, in
    a database storage) without the `error` line every trial failing on its own has."""
    from optuna.trial import TrialState

    return bool(t.user_attrs.get("interrupted")) or (
        t.state == TrialState.FAIL and not t.user_attrs.get("error"))


def counted(study: Any) -> int:
    """Trials done or under way that count towards `trials`: all but the interrupted ones
    (another trial replaces each)."""
    from optuna.trial import TrialState

    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state != TrialState.WAITING and not interrupted(t))


def list_sweeps(runs_root: Path) -> list[SweepInfo]:
    """Every sweep folder under `runs_root` (runs/<session>/sweep-<study>/), newest first."""
    found = []
    for folder in sorted(Path(runs_root).glob(f"*/{SWEEP_PREFIX}*")):
        try:
            info = json.loads((folder / SWEEP_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(info, dict):
            continue
        found.append(SweepInfo(folder, str(info.get("study", "")), str(info.get("session", "")),
                               str(info.get("storage", "")), str(info.get("created", "")),
                               int(info.get("trials", 0) or 0), info))
    return sorted(found, key=lambda s: s.created, reverse=True)


def listed_storage(info: SweepInfo) -> Any:
    """The storage a listed sweep's sweep.json names: a database URL, or its journal file,
    which must be there (Optuna would make an empty one in its place)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if "://" in info.storage:
        return optuna.storages.RDBStorage(info.storage)
    from optuna.storages.journal import JournalFileBackend

    if not Path(info.storage).is_file():
        raise LlmlabError(f"{info.storage}: no journal file (the study was never started or "
                          "its file was moved)")
    return optuna.storages.JournalStorage(JournalFileBackend(info.storage))


def load_listed_study(info: SweepInfo) -> Any:
    """The optuna.Study of a listed sweep, from the storage its sweep.json names."""
    import optuna

    try:
        return optuna.load_study(study_name=info.study, storage=listed_storage(info))
    except LlmlabError:
        raise
    except Exception as e:  # noqa: BLE001 (one unreadable study never hides the others)
        raise LlmlabError(f"cannot read: {one_line(str(e))}") from None


def study_summary(info: SweepInfo) -> tuple[int, float | None]:
    """(trials counted, best value) of a listed sweep's study, read from its storage."""
    study = load_listed_study(info)
    done = [t.value for t in study.get_trials(deepcopy=False) if t.value is not None]
    return counted(study), min(done, default=None)


def request_stop(info: SweepInfo, by: str) -> None:
    """Ask every process running the study to stop, wherever it runs (any machine sharing
    its storage), as Ctrl+C stops one: its running trials save and stop, not counted, and
    `--resume` continues the study. The request is kept in the study (a user attribute),
    where each process looks every few seconds (core.sweep); it holds for the processes
    that were running when it was made, not for one started later."""
    try:
        load_listed_study(info).set_user_attr(STOP_ATTR, {"by": by, "at": time.time()})
    except LlmlabError as e:
        raise LlmlabError(f"study {info.study}: {e}") from None
    except Exception as e:  # noqa: BLE001 (a storage that refuses the write)
        raise LlmlabError(f"study {info.study}: cannot write to {info.storage}: "
                          f"{one_line(str(e))}") from None


def stop_request(study: Any, since: float) -> str | None:
    """Who asked the study's processes to stop ("host:pid:start"), if that was at or after
    `since` (a process's start, time.time()); None if nobody did."""
    asked = study.user_attrs.get(STOP_ATTR)
    if not (isinstance(asked, dict) and isinstance(asked.get("at"), int | float)):
        return None
    return str(asked.get("by") or "?") if asked["at"] >= since else None
