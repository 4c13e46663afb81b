"""Sweeps: an Optuna study whose trials are training jobs.

Optuna does the search (its samplers, pruners and storage); llmlab does what a trial is. A trial
samples the session's `[sweep.space]`, makes a copy of the session with those values (a point
that makes the session invalid is that trial's failure, with the validator's line), and trains
it as an ordinary job (core.launch: its own process and run folder, visible in `llmlab runs`
and the Runs pane, controllable with `llmlab ctl`). The sweep follows the run folder
(core.follow), reports each val loss to Optuna, and when the pruner says so asks the job to
stop (core.control) and records the trial as pruned at that step. `parallel = K` runs K jobs
at once (Optuna's threads, each of which only waits on files), each with cores/K threads.

The study lives in an Optuna journal file in the sweep's folder,
`runs/<session>/sweep-<study>/journal.log` (readable by `optuna-dashboard PATH`), or in the
database `sweep.storage` names, so a sweep killed in the middle continues with
`Sweep(..., resume=True)`: its trials still marked running are settled first (a finished job
counts, a failed one fails with its line, a dead or still-running one is failed as
interrupted and replaced), then the study runs until `trials` trials are done.
A stop asked of the study (core.sweep_storage.request_stop: `llmlab sweep --stop`, the Sweep
pane) reaches every process running it, on any machine sharing its storage: each looks for it
every STOP_CHECK_S and stops as Ctrl+C would stop it.

With `data.folds = k > 1` a trial is k fold jobs (core.folds), one after another, each with
the trial's share of the cores, and its value is the mean of the folds' best val losses.
Only fold 0's val losses are reported to Optuna as intermediate values, so the pruner
compares every trial on the same held-out block and stops a hopeless one after one fold's
cost, not k; a mean over folds at each step would need the k folds to train at once (k times
the processes) and would be known only once the slowest fold reached that step.
"""

from __future__ import annotations

import copy
import json
import math
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from core import messages as msg
from core.errors import LlmlabError
from core.fileio import atomic_write_text
from core.runs import process_start, read_run_info, run_status
from core.session import Session, field_kind, set_field, validate
from core.sweep_storage import (
    JOURNAL_FILE,
    SWEEP_FILE,
    SWEEP_PREFIX,
    counted,
    interrupted,
    open_storage,
    stop_request,
    sweep_folder,
)
from core.text import one_line

if TYPE_CHECKING:
    import optuna

POLL_S = 0.2
STOP_CHECK_S = 2.0  # how often a running sweep looks for a stop asked of its study
STOP_WAIT_S = 120.0  # how long a stopped job may take to save its checkpoint and exit
# A trial's states as the table shows them (Optuna's, and `interrupted`: failed because the
# sweep stopped or died while it trained; such a trial is not counted, another replaces it).
RUNNING, COMPLETE, PRUNED, FAILED, INTERRUPTED = (
    "running", "complete", "pruned", "failed", "interrupted")


class TrialFailed(Exception):
    """A trial that failed for a reason of its own (its one line): it counts as run."""


class Interrupted(Exception):
    """The sweep was stopped (Ctrl+C): the running trials are stopped and not counted."""


@dataclass
class TrialView:
    """One trial as a table shows it."""

    number: int
    params: dict[str, Any]
    state: str = RUNNING
    step: int = 0
    val_loss: float | None = None  # the latest val loss
    best: float | None = None  # the trial's best val loss (its value once complete)
    run_dir: str = ""
    reason: str = ""


def worker_id() -> str:
    """This process, as a trial records who runs it (host, pid, and when the pid started:
    a later process given the same pid is not taken for it)."""
    return f"{socket.gethostname()}:{os.getpid()}:{process_start(os.getpid())}"


def worker_alive(worker: str) -> bool | None:
    """Whether the sweep process `worker` still lives; None: another host, cannot tell."""
    host, _, rest = worker.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    return str(process_start(int(pid))) == started


def new_study_name(session: Session) -> str:
    """The start time, `-2`, `-3`... when a sweep of the session started that second."""
    base = time.strftime("%Y%m%d-%H%M%S")
    n = 1
    while sweep_folder(session, base if n == 1 else f"{base}-{n}").exists():
        n += 1
    return base if n == 1 else f"{base}-{n}"


def make_sampler(session: Session) -> Any:
    import optuna

    cfg, seed = session.sweep, session.train.seed % 2**32
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if cfg.sampler == "grid":
        return optuna.samplers.GridSampler(grid_space(cfg.space), seed=seed)
    # constant_liar: a running trial counts as a bad one, so parallel trials spread out
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def make_pruner(session: Session) -> Any:
    import optuna

    cfg = session.sweep
    if cfg.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=cfg.pruner_startup)
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, session.train.eval_interval))
    return optuna.pruners.NopPruner()


def grid_space(space: dict[str, dict[str, Any]]) -> dict[str, list[Any]]:
    """Every value of each searched field, for the grid sampler (choices, or low..high by
    step; an integer range steps by 1)."""
    grid = {}
    for name, entry in space.items():
        if "choices" in entry:
            grid[name] = list(entry["choices"])
            continue
        low, high, step = entry["low"], entry["high"], entry.get("step", 1)
        count = int(math.floor((high - low) / step + 1e-9)) + 1
        grid[name] = [low + i * step for i in range(count)]
    return grid


def suggest(trial: Any, name: str, entry: dict[str, Any]) -> Any:
    """The trial's value of the searched field `name` (Optuna's suggest_*)."""
    if "choices" in entry:
        return trial.suggest_categorical(name, entry["choices"])
    low, high, log, step = entry["low"], entry["high"], bool(entry.get("log")), entry.get("step")
    if field_kind(name) is int:
        return trial.suggest_int(name, low, high, step=step or 1, log=log)
    return trial.suggest_float(name, float(low), float(high), step=step, log=log)


def thread_env(processes: int) -> dict[str, str]:
    """Each of `processes` training processes at once (`parallel` jobs of `train.nproc`
    each) gets cores/processes threads (at least one). One process alone gets nothing fixed:
    it fits its threads to the cores free at the time, as any training does (core/threads.py;
    a fixed count on a busy machine made sweep trials up to 7x slower)."""
    if processes <= 1:
        return {}
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # (not Linux)
        cores = os.cpu_count() or 1
    threads = str(max(1, cores // max(1, processes)))
    return {"OMP_NUM_THREADS": threads, "LLMLAB_THREADS": threads}


def trial_view(t: Any) -> TrialView:
    """A trial of the study (an Optuna FrozenTrial) as the table shows it."""
    from optuna.trial import TrialState

    state = {TrialState.COMPLETE: COMPLETE, TrialState.PRUNED: PRUNED,
             TrialState.FAIL: FAILED}.get(t.state, RUNNING)
    attrs = t.user_attrs
    if interrupted(t):
        state = INTERRUPTED
    values = t.intermediate_values
    last = max(values) if values else None
    view = TrialView(t.number, dict(t.params), state, int(attrs.get("step", last or 0)),
                     values[last] if last is not None else None, t.value,
                     str(attrs.get("run_dir", "")),
                     str(attrs.get("error") or attrs.get("interrupted")
                         or ("its worker stopped; replaced" if state == INTERRUPTED else "")))
    if state == PRUNED:
        view.reason = f"pruned at step {last}" if last is not None else "pruned"
    if view.best is None and values:
        view.best = min(values.values())
    return view


class Sweep:
    """One study over `session` (its `[sweep]` section), run by this process."""

    def __init__(self, session: Session, study: str | None = None, *, resume: bool = False):
        if not session.sweep.space:
            raise LlmlabError("sweep.space: nothing to search; add fields under [sweep.space], "
                              "e.g. \"optim.lr\" = { low = 1e-4, high = 1e-2, log = true }")
        self.session = session
        self.cfg = session.sweep
        self.resume = resume
        self.study_name = study or new_study_name(session)
        self.folder = sweep_folder(session, self.study_name)
        self.views: dict[int, TrialView] = {}
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.stopped_by: str | None = None  # who asked the study to stop (request_stop)
        self.opened_at = time.time()  # (a stop asked before this process began is not for it)
        self._next_stop_check = 0.0
        self.env = thread_env(self.cfg.parallel * session.train.nproc)
        self.study: optuna.Study | None = None

    # ------------------------------------------------------------------ the study

    def open(self) -> optuna.Study:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)  # (the table says what happens)
        if self.resume and not self.cfg.storage and not (self.folder / JOURNAL_FILE).exists():
            raise LlmlabError(f"{self.study_name}: no such sweep of session "
                              f"{self.session.name} (no {self.folder / JOURNAL_FILE}); "
                              "llmlab sweeps lists them")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LlmlabError(f"{self.folder}: cannot create the sweep folder: "
                              f"{e.strerror or e}") from None
        storage = open_storage(self.session, self.folder)
        sampler, pruner = make_sampler(self.session), make_pruner(self.session)
        try:
            if self.resume:
                self.study = optuna.load_study(study_name=self.study_name, storage=storage,
                                               sampler=sampler, pruner=pruner)
            else:
                self.study = optuna.create_study(storage=storage, sampler=sampler,
                                                 pruner=pruner, study_name=self.study_name,
                                                 direction="minimize")
        except KeyError:
            raise LlmlabError(f"{self.study_name}: no such study in "
                              f"{self.cfg.storage or self.folder / JOURNAL_FILE}") from None
        except optuna.exceptions.DuplicatedStudyError:
            raise LlmlabError(f"{self.study_name}: a study of that name exists; continue it "
                              "with --resume") from None
        self._write_info()
        return self.study

    def _write_info(self) -> None:
        """sweep.json: which study, session and storage (kept from its first writing), and
        the trial count this process runs the study to (`--resume --trials N` raises it)."""
        path = self.folder / SWEEP_FILE
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = None
        if not isinstance(info, dict):
            info = {"study": self.study_name, "session": self.session.name,
                    "storage": self.cfg.storage or str(self.folder / JOURNAL_FILE),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "space": self.cfg.space}
        info["trials"] = self.cfg.trials
        atomic_write_text(path, json.dumps(info, indent=2) + "\n")

    def run(self) -> optuna.Study:
        """Run the study until `trials` trials are done (or `timeout`, or `stop()`); raises
        Interrupted when stopped."""
        study = self.study or self.open()
        self.settle_running()
        remaining = self.cfg.trials - counted(study)
        if remaining > 0 and not self.stop_event.is_set():
            study.optimize(self._objective, n_trials=remaining, n_jobs=self.cfg.parallel,
                           timeout=self.cfg.timeout or None, catch=(TrialFailed,),
                           callbacks=[self._enough])
        if self.stop_event.is_set():
            raise Interrupted("stopped")
        return study

    def stop(self) -> None:
        """Stop the sweep: the running trials' jobs are asked to stop (each is failed as
        interrupted: another replaces it when the sweep is resumed) and no trial starts."""
        self.stop_event.set()

    def stop_asked(self) -> bool:
        """Whether to stop: `stop()` was called, or a stop was asked of the study since this
        process opened it, from any machine (core.sweep_storage.request_stop), which the
        storage is asked at most every STOP_CHECK_S."""
        if self.stop_event.is_set() or self.study is None:
            return self.stop_event.is_set()
        now = time.monotonic()
        with self.lock:
            if now < self._next_stop_check:
                return False
            self._next_stop_check = now + STOP_CHECK_S
        try:
            by = stop_request(self.study, self.opened_at)
        except Exception:  # noqa: BLE001 (a storage that fails a read: look again later)
            return False
        if by is not None:
            self.stopped_by = by
            self.stop_event.set()
        return self.stop_event.is_set()

    def _enough(self, study: Any, trial: Any) -> None:
        """Several workers (machines) on one study: stop once `trials` are done or running."""
        if counted(study) >= self.cfg.trials:
            study.stop()

    def table(self) -> list[TrialView]:
        """Every trial, its live view while this process runs it (step, latest val loss)."""
        if self.study is None:
            return []
        with self.lock:
            live = dict(self.views)
        rows = []
        for t in self.study.get_trials(deepcopy=False):
            view = trial_view(t)
            if view.state == RUNNING and t.number in live:
                view = live[t.number]
            rows.append(view)
        return rows

    # ------------------------------------------------------------------ resuming

    def settle_running(self) -> None:
        """Trials still marked running whose sweep process is gone (killed, crashed): a
        finished job counts with its result, a failed one with its line; a job that died,
        or still trains with nobody following it (it is asked to stop), fails the trial as
        interrupted, and another trial replaces it."""
        from optuna.trial import TrialState

        assert self.study is not None
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if worker_alive(str(t.user_attrs.get("worker", ""))) is not False:
                continue  # (its sweep still runs, here or on another machine)
            self._settle(t)

    def _settle(self, t: Any) -> None:
        import optuna
        from optuna.trial import TrialState

        assert self.study is not None
        trial = optuna.trial.Trial(self.study, t._trial_id)  # (to write on a trial not ours)
        run_dir = Path(t.user_attrs["run_dir"]) if "run_dir" in t.user_attrs else None
        fold_runs = [Path(p) for p in t.user_attrs.get("fold_runs", [])]
        if fold_runs:  # (folds: the last one started is the one that may still train)
            run_dir = fold_runs[-1]
        status = run_status(run_dir) if run_dir is not None else "not started"
        if status in ("running", "paused"):
            _stop_job(run_dir)
            status = run_status(run_dir)
        info = read_run_info(run_dir) if run_dir is not None else {}
        if status == "finished" and fold_runs and len(fold_runs) == t.user_attrs.get("folds"):
            from core.folds import summarize_folds

            summary = summarize_folds(fold_runs)
            if summary.mean is not None and len(summary.done) == summary.of:
                trial.set_user_attr("fold_losses", summary.done)
                self.study.tell(t.number, summary.mean)
                return
        if status == "finished" and not fold_runs and _number(info.get("best_val_loss")):
            self.study.tell(t.number, float(info["best_val_loss"]))
        elif status == "failed":
            trial.set_user_attr("error", one_line(str(info.get("error") or "the job failed")))
            self.study.tell(t.number, state=TrialState.FAIL)
        else:
            trial.set_user_attr("interrupted", f"the sweep ended while it trained (its job: "
                                               f"{status} at step {info.get('step', 0)}); "
                                               "replaced")
            self.study.tell(t.number, state=TrialState.FAIL)

    # ------------------------------------------------------------------ one trial

    def _objective(self, trial: Any) -> float:
        trial.set_user_attr("worker", worker_id())
        params = {name: suggest(trial, name, entry) for name, entry in self.cfg.space.items()}
        view = TrialView(trial.number, params)
        with self.lock:
            self.views[trial.number] = view
        if self.stop_asked():
            self._interrupt(trial, view, "the sweep was stopped before it started")
        session = copy.deepcopy(self.session)
        for name, value in params.items():
            set_field(session, name, value)
        problems = validate(session)
        if problems:
            self._fail(trial, view, f"invalid point: {problems[0]}")
        from core.folds import fold_info, fold_session
        from core.launch import RUN_INFO_ENV, launch_training
        from core.runs import new_run_dir

        k = session.data.folds
        label = {"sweep": self.study_name, "trial": trial.number,
                 "name": f"{SWEEP_PREFIX}{self.study_name} #{trial.number}"}
        if k > 1:
            trial.set_user_attr("folds", k)
        fold_runs: list[str] = []
        losses = []
        for fold in range(k):  # (k = 1: the one run, as without folds)
            run_dir = new_run_dir(session.resolve(session.train.runs_dir),
                                  session.name).absolute()
            fold_runs.append(str(run_dir))
            info = dict(label)
            if k > 1:
                info.update(fold_info(Path(fold_runs[0]).name, fold, k),
                            name=f"{label['name']} fold {fold}")
                trial.set_user_attr("fold_runs", fold_runs)
                view.state, view.reason, view.step = RUNNING, f"fold {fold + 1} of {k}", 0
            if fold == 0:
                view.run_dir = str(run_dir)
                trial.set_user_attr("run_dir", str(run_dir))
            try:  # (the job writes which study and trial it is into its own run.json)
                job = launch_training(fold_session(session, fold) if k > 1 else session,
                                      run_dir=run_dir,
                                      env={**self.env, RUN_INFO_ENV: json.dumps(info)})
            except LlmlabError as e:
                self._fail(trial, view, str(e))
            losses.append(self._follow(trial, view, job, report=fold == 0))
        if k == 1:
            return losses[0]
        return self._fold_result(trial, view, losses)

    def _fold_result(self, trial: Any, view: TrialView, losses: list[float]) -> float:
        """A trial over k folds is worth the mean of the folds' best val losses (core.folds);
        each fold's and the spread are kept on the trial."""
        import statistics

        mean = statistics.fmean(losses)
        trial.set_user_attr("fold_losses", losses)
        trial.set_user_attr("fold_std", statistics.stdev(losses))
        view.state, view.best = COMPLETE, mean
        view.reason = f"mean of {len(losses)} folds ± {statistics.stdev(losses):.4f}"
        return mean

    def _follow(self, trial: Any, view: TrialView, job: Any, report: bool = True) -> float:
        """Follow a trial's job to its end: its best val loss. `report`: its val losses go
        to Optuna (and the pruner); with folds only fold 0's do, see `_objective`."""
        import optuna

        from core.follow import RunFollower
        from core.launch import log_tail

        follower = RunFollower(job.run_dir)
        while True:
            ended = job.process.poll() is not None
            for event in follower.poll(state=False):
                if isinstance(event, msg.StepMetrics):
                    view.step = max(view.step, event.step)
                elif isinstance(event, msg.EvalMetrics) and event.split == "val" and report:
                    self._report(trial, view, event)
                    if trial.should_prune():
                        _stop_job(job.run_dir, job.process)
                        view.state, view.reason = PRUNED, f"pruned at step {event.step}"
                        raise optuna.TrialPruned(view.reason)
            if ended:
                break
            if self.stop_asked():
                _stop_job(job.run_dir, job.process)
                self._interrupt(trial, view, f"the sweep was stopped at step {view.step}")
            time.sleep(POLL_S)
        info = read_run_info(job.run_dir)
        status = info.get("status")
        if status == "finished" and _number(info.get("best_val_loss")):
            view.state, view.best = COMPLETE, float(info["best_val_loss"])
            return view.best
        if status == "finished":
            self._fail(trial, view, "finished without a val loss (set train.eval_interval)")
        if status == "failed":
            self._fail(trial, view, one_line(str(info.get("error") or "the job failed")))
        if status == "stopped":
            self._fail(trial, view, f"stopped at step {info.get('step', view.step)} by a "
                                    "request (llmlab ctl, the app)")
        code = job.process.returncode
        why = (f"killed by signal {-code}" if code < 0 else log_tail(job.log_path)
               or f"exit code {code}")
        self._fail(trial, view, f"the job died at step {view.step}: {why}")

    def _report(self, trial: Any, view: TrialView, event: msg.EvalMetrics) -> None:
        view.step, view.val_loss = max(view.step, event.step), event.loss
        view.best = event.loss if view.best is None else min(view.best, event.loss)
        trial.report(event.loss, event.step)
        trial.set_user_attr("step", view.step)

    def _fail(self, trial: Any, view: TrialView, line: str) -> NoReturn:
        view.state, view.reason = FAILED, one_line(line)
        trial.set_user_attr("error", view.reason)
        raise TrialFailed(view.reason)

    def _interrupt(self, trial: Any, view: TrialView, line: str) -> NoReturn:
        if self.stopped_by:
            line += f" (asked by {self.stopped_by})"
        view.state, view.reason = INTERRUPTED, line
        trial.set_user_attr("interrupted", line)
        raise Interrupted(line)


def _stop_job(run_dir: Path, process: Any = None) -> None:
    """Ask the job training `run_dir` to stop (it saves a checkpoint and exits) and wait for
    it to end, so its cores are free before the next trial starts."""
    from core.control import make_request, send_control

    try:
        send_control(run_dir, make_request("stop"))
    except (LlmlabError, OSError):
        pass
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline:
        if process is not None:
            if process.poll() is not None:
                return
        elif run_status(run_dir) not in ("running", "paused"):
            return
        time.sleep(POLL_S)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)
