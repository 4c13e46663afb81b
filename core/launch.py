"""Starting a training as a job: `llmlab train` in a process of its own, detached.

The app (and `llmlab train --detach`) never trains in its own process: it launches the same
command a user would type, in a new session (`setsid`: a hang-up of the terminal, the SSH
connection dropping, or the app being killed does not reach it), with its output going to
`train.log` in the run folder. The run folder is made here first, so the launcher knows where
to follow the job (core.follow) and to send it requests (core.control) before the job has
written a line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import LlmlabError, disk_fault
from core.runs import INFO_FILE, SESSION_FILE, new_run_dir
from core.session import Session, save_session

LOG_FILE = "train.log"
SWEEP_LOG = "sweep.log"  # a sweep's output when the app started it, in its folder
# Fields a launcher asks the job to write into its run.json itself (a sweep's study and trial):
# the job is the run folder's one writer, so nobody else writes run.json while it runs.
RUN_INFO_ENV = "LLMLAB_RUN_INFO"


def launcher_info() -> dict:
    """The run.json fields the launcher of this job asked for (LLMLAB_RUN_INFO, a JSON
    object); {} if none or not an object."""
    try:
        info = json.loads(os.environ.get(RUN_INFO_ENV, "") or "{}")
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


@dataclass
class Launched:
    run_dir: Path
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def launch_training(session: Session, resume: str | Path | None = None,
                    nproc: int = 0, *, run_dir: Path | None = None,
                    env: dict[str, str] | None = None, max_restarts: int = 0) -> Launched:
    """Start training `session` as a job (or continue the run folder `resume`); `nproc` > 0:
    with that many processes (else the session's train.nproc; a resume may change it).
    `run_dir`: the new run's folder, made by the caller (a sweep records it before the job
    starts); `env`: variables added to the job's environment (a sweep's thread counts);
    `max_restarts`: torchrun restarts its processes that many times when one dies."""
    if resume is not None:
        run_dir = Path(resume).absolute()
        args = ["train", str(run_dir / SESSION_FILE), "--resume", str(run_dir),
                "--set", f"train.runs_dir={json.dumps(str(run_dir.parent.parent))}"]
    else:
        if run_dir is None:
            run_dir = new_run_dir(session.resolve(session.train.runs_dir), session.name)
        run_dir = Path(run_dir).absolute()
        session_file = run_dir / SESSION_FILE
        try:
            save_session(launch_copy(session), session_file)
        except OSError as e:
            raise disk_fault(e, "write", session_file) from None
        args = ["train", str(session_file), "--run-dir", str(run_dir)]
    if nproc > 0:
        args += ["--nproc", str(nproc)]
    if max_restarts > 0:
        args += ["--max-restarts", str(max_restarts)]
    return Launched(run_dir, _spawn(args, run_dir / LOG_FILE, env or {}), run_dir / LOG_FILE)


def launch_sweep(session_file: Path, study: str, folder: Path, *, resume: bool = False
                 ) -> subprocess.Popen:
    """Start `llmlab sweep SESSION` (a new study named `study`, or `--resume` it) as a job of
    its own, like a training: it outlives the app that started it, its output goes to
    `sweep.log` in the sweep's `folder`, and it is stopped as Ctrl+C stops it (SIGINT)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise disk_fault(e, "write", folder) from None
    args = ["sweep", str(session_file), "--resume" if resume else "--study", study]
    return _spawn(args, folder / SWEEP_LOG, {})


def launch_copy(session: Session) -> Session:
    """The session as the job reads it from inside its run folder: the corpus and the runs
    folder made absolute (relative paths would resolve against the run folder)."""
    corpus = session.data.corpus
    if not corpus.startswith("sample:"):
        corpus = str(session.resolve(corpus))
    runs_dir = str(session.resolve(session.train.runs_dir))
    return dataclasses.replace(
        session, data=dataclasses.replace(session.data, corpus=corpus),
        train=dataclasses.replace(session.train, runs_dir=runs_dir))


def _spawn(args: list[str], log_path: Path, extra_env: dict[str, str]) -> subprocess.Popen:
    try:
        log = open(log_path, "ab")
    except OSError as e:
        raise disk_fault(e, "write", log_path) from None
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra_env}
    env.pop("TEXTUAL", None)  # (a job has no screen: nothing of the app's devtools)
    try:
        with log:
            return subprocess.Popen([sys.executable, "-m", "llmlab", *args],
                                    stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    close_fds=True, env=env)
    except OSError as e:
        what = "sweep" if args[0] == "sweep" else "training"
        raise LlmlabError(f"cannot start the {what} job: {e.strerror or e}") from None


def log_tail(log_path: Path, lines: int = 1) -> str:
    """The last line(s) of a job's log that say something (a job that died before its run
    started leaves its reason there)."""
    from core.fileio import read_small_file
    from core.text import one_line

    try:
        data = read_small_file(log_path, 1 << 24)[-8192:]
    except OSError:
        return ""
    kept = [one_line(x) for x in data.decode("utf-8", "replace").splitlines() if x.strip()]
    return "\n".join(kept[-lines:])


def record_refusal(run_dir: Path, session_name: str, error: str) -> None:
    """A job refused before its run began (a bad corpus, a model that does not fit) in the
    folder its launcher made: run.json says so, with the one line, so `llmlab runs` and any
    viewer show `failed` and why (not an unexplained folder)."""
    from core.fileio import atomic_write_text

    info = {"session": session_name, "status": "failed", "error": error, "step": 0,
            "unstarted": True, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    try:
        atomic_write_text(Path(run_dir) / INFO_FILE, json.dumps(info, indent=2) + "\n")
    except OSError:
        pass  # (its train.log still says why)


def discard_unstarted(run_dir: Path) -> bool:
    """Remove the folder of a job that was refused before its run began (`record_refusal`,
    or no run.json at all), so the app that launched it leaves no empty run behind; its
    reason was shown first. A folder holding anything else is left alone. True if removed."""
    from core.runs import read_run_info

    expected = {SESSION_FILE, LOG_FILE, INFO_FILE}
    try:
        entries = {p.name for p in Path(run_dir).iterdir()}
        if not entries <= expected or (
                INFO_FILE in entries and not read_run_info(run_dir).get("unstarted")):
            return False
        for name in entries:
            (Path(run_dir) / name).unlink()
        Path(run_dir).rmdir()
    except OSError:
        return False
    return True
