"""The app's training controls: start, resume, pause, stop, live hyperparameters, evaluate.

A mixin of `tui.app.LlmlabApp` (`self` is the app): the keys and palette commands that steer
the engine's training. The engine's answers come back as events the app and the Train pane
handle.
"""

from __future__ import annotations

import asyncio
import copy
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import messages as msg
from core.errors import LlmlabError
from core.session import LIVE_FIELDS, Session, get_field, live_values, needs_restart
from core.values import EngineState
from tui.commands import PaletteCommand
from tui.messages import ResumeFoldsRequest, ResumeRunRequest
from tui.screens.confirm import ConfirmScreen
from tui.screens.hparam_edit import HparamEditScreen
from tui.screens.path_picker import PathPickerScreen

if TYPE_CHECKING:
    from core.follow import Attached
    from core.launch import Launched


class TrainingActions:
    """Start and steer the training run (a mixin of the app)."""

    def training_commands(self) -> list[PaletteCommand]:
        """The palette's training commands."""
        c = PaletteCommand
        return [
            c("Train: start", "start a new run of this session", self.action_start_training),
            c("Train: pause / resume", "", self.action_toggle_pause),
            c("Train: stop", "stop after this step, saving a checkpoint",
              self.action_stop_training),
            c("Train: learning rate x2", "now, in the running training",
              partial(self.action_scale_lr, 2.0)),
            c("Train: learning rate x0.5", "now, in the running training",
              partial(self.action_scale_lr, 0.5)),
            c("Train: edit a live hyperparameter", "lr, weight decay, grad clip, eval interval",
              self.action_edit_hparam),
            c("Train: keep the run's live values", "copy the lr etc. the run was changed to "
              "into the session (asks first)", self.action_keep_run_changes),
            c("Train: evaluate (val split)", "loss, perplexity, bits/char, top-1/5, macro-F1 "
              "over the whole val split", partial(self.action_evaluate, "val")),
            c("Train: evaluate (test split)", "the same over the whole test split",
              partial(self.action_evaluate, "test")),
            *([c("Train: follow a run…", "show a run folder in the Train pane, live while a "
                 "job trains it (started anywhere: another terminal, an app since closed)",
                 self.action_follow_run)] if self._jobs else []),
        ]

    def action_start_training(self) -> None:
        if self.training.busy:
            self.notify(f"a run is already going: stop it ({self._key('train.stop')}) first",
                        severity="warning")
            return
        if self._problem_notice("start training"):
            return
        if (k := self.session.data.folds) > 1:
            if self._jobs:
                self._start_folds(copy.deepcopy(self.session))
            else:  # (the in-process engine trains one run at a time)
                self.notify(f"data.folds = {k}: cross-validation trains {k} runs; run it "
                            f"with llmlab train SESSION (--detach: as jobs); the Runs pane "
                            f"groups them", severity="warning", timeout=8)
            return
        self._start(self.session, None)

    def _start_folds(self, session: Session) -> None:
        """Cross-validation (data.folds = k > 1): the k folds start at once as jobs, each
        with its share of the cores, as `llmlab train --detach` starts them; the Train pane
        follows fold 1 and the Runs pane groups them. Every fold's size is checked first: that
        reads the corpus, so it runs in a thread."""
        if self._folds_worker_busy():
            return
        self.notify(f"cross-validation: starting {session.data.folds} folds as jobs …",
                    timeout=4)
        self.run_worker(partial(self._launch_folds, session), name="folds", thread=True)

    def _folds_worker_busy(self) -> bool:
        """Folds are being started or resumed (a thread launching jobs): a second key press
        meanwhile would launch them twice. Says so."""
        if any(w.name == "folds" and not w.is_finished for w in self.workers):
            self.notify("the folds are being started", severity="warning")
            return True
        return False

    def _launch_folds(self, session: Session) -> None:
        """(In a thread.) Check the folds' sizes, then launch them."""
        from core.folds import check_fold_sizes, launch_folds

        try:
            check_fold_sizes(session)
            jobs = launch_folds(session)
        except LlmlabError as e:
            self.call_from_thread(self.notify, str(e), severity="error", timeout=8)
            return
        self.call_from_thread(self._folds_launched, jobs)

    def _folds_launched(self, jobs: list[Launched]) -> None:
        """Follow fold 1. The folds train on as jobs of their own, as with --detach:
        quitting leaves them be."""
        said = (f"{len(jobs)} folds training as jobs, group {jobs[0].run_dir.name}: the Runs "
                f"pane ({self._key('app.runs')}) shows them all")
        if self.training.busy:  # (another run is followed: it stays followed)
            self.notify(said, timeout=8)
            return
        self.training.follow_new(jobs[0])
        self.notify(f"{said}, the Train pane follows fold 1", timeout=8)
        self.refresh_bindings()
        self.call_next(self.show_pane, "train")

    def _start(self, run_session: Session, resume: str | None) -> None:
        """Start (or resume) training; the session the run has is `run_session`."""
        self.run_session = copy.deepcopy(run_session)
        self.live = live_values(run_session)
        try:  # (a resume brings the run's own session; a new run trains run_session)
            fresh = self.training.start(self.session if resume else run_session, resume)
        except LlmlabError as e:
            self.notify(str(e), severity="error")
            return
        self._engine_synced()
        if fresh:
            self._engine_replaced()
        self.train_pane.show_hparams(self.live)
        self.refresh_bindings()
        self.call_next(self.show_pane, "train")

    # ------------------------------------------------------------------ jobs

    def attach_run(self, run_dir: str | Path, show: bool = True) -> None:
        """Follow the run at `run_dir` in the Train pane: live while a job trains it (`show`:
        and show that pane now)."""
        if not self._jobs:
            return
        before = self.training.run_dir if self.training.busy else None
        self.training.attach(run_dir)
        also = f" ({before} trains on)" if before and before != str(run_dir) else ""
        self.notify(f"following {run_dir}{also}", timeout=4)
        if show:
            self.call_next(self.show_pane, "train")

    def action_follow_run(self) -> None:
        """Ask for a run folder and follow it."""
        from core.runs import is_run_dir

        def accept(path: Path) -> str | None:
            return None if is_run_dir(path) else f"{path}: not a run folder (no run.json)"

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.attach_run(path)

        start = self.session.resolve(self.session.train.runs_dir)
        self.push_screen(PathPickerScreen("Follow a run", start if start.is_dir() else
                                          Path.cwd(), pick="any", accept=accept), chosen)

    async def _attach_live_run(self) -> None:
        """A session reopened while a job trains one of its runs: follow that run at once."""
        from core.runs import list_runs

        runs_root = self.session.resolve(self.session.train.runs_dir)
        runs = await asyncio.to_thread(list_runs, runs_root, self.session.name)
        live = next((r for r in runs if r.status in ("running", "paused")), None)
        if live is not None and not self.training.busy:
            self.attach_run(live.path)

    def _job_attached(self, attached: Attached, replayed: bool) -> None:
        """The followed run's live values are the ones the keys change from; a long run's
        history goes to the Train pane at once (a short one was replayed as events)."""
        hparams = attached.info.get("hparams")
        self.live = dict(hparams) if isinstance(hparams, dict) else live_values(self.session)
        if replayed:
            self.train_pane.show_hparams(self.live)
        else:
            self.train_pane.show_attached(attached)

    def on_resume_run_request(self, message: ResumeRunRequest) -> None:
        from core.runs import load_run_session, restart_session, run_status

        if self._jobs and run_status(Path(message.path)) in ("running", "paused"):
            self.attach_run(message.path)  # (a job trains it: follow that one)
            return

        if self.training.busy:
            self.notify(f"a run is already going: stop it ({self._key('train.stop')}) first",
                        severity="warning")
            return
        try:
            frozen = (restart_session if message.fresh else load_run_session)(
                Path(message.path))
        except LlmlabError as e:
            self.notify(str(e), severity="error")
            return
        if message.fresh:
            self.notify(f"starting a new run from the session of {message.path}", timeout=4)
            self._start(frozen, None)
            return
        self.notify(f"resuming {message.path}", timeout=4)
        self._start(frozen, message.path)

    def on_resume_folds_request(self, message: ResumeFoldsRequest) -> None:
        """Continue a cross-validation group's folds that stopped before they finished, as
        jobs at once (core.folds.resume_folds, in a thread: it launches processes)."""
        if not self._jobs:
            self.notify("resume each fold alone: its row under the group", severity="warning")
            return
        if self._folds_worker_busy():
            return
        self.run_worker(partial(self._resume_folds, [Path(p) for p in message.paths]),
                        name="folds", thread=True)

    def _resume_folds(self, run_dirs: list[Path]) -> None:
        """(In a thread.)"""
        from core.folds import resume_folds

        try:
            jobs, left = resume_folds(run_dirs)
        except LlmlabError as e:
            self.call_from_thread(self.notify, str(e), severity="error", timeout=8)
            return
        self.call_from_thread(self._folds_resumed, jobs, left)

    def _folds_resumed(self, jobs: list[Launched], left: list[str]) -> None:
        also = f" ({'; '.join(left)})" if left else ""
        if not jobs:
            self.notify(f"no fold to continue{also}", severity="warning", timeout=8)
            return
        self.notify(f"continuing {len(jobs)} folds as jobs{also}", timeout=8)
        if not self.training.busy:  # (the Train pane follows the first)
            self.training.follow_new(jobs[0])
            self.refresh_bindings()

    def action_toggle_pause(self) -> None:
        try:
            if self.training.state is EngineState.RUNNING:
                self.training.pause()
                self.train_pane.acknowledge("pause")
            elif self.training.state is EngineState.PAUSED:
                self.training.resume()
                self.train_pane.acknowledge("resume")
            else:
                self.notify("no training is running", severity="warning")
        except LlmlabError as e:
            self.notify(str(e), severity="warning")

    def action_stop_training(self) -> None:
        if not self.training.busy:
            self.notify("no training is running", severity="warning")
            return
        try:
            self.training.stop()
            self.train_pane.acknowledge("stop")
        except LlmlabError as e:
            self.notify(str(e), severity="warning")

    # ------------------------------------------------------------------ live values

    def action_scale_lr(self, factor: float) -> None:
        if not self.training.busy:
            self.notify("no training is running: optim.lr is edited in the Model pane",
                        severity="warning")
            return
        new = float(f"{self.live['optim.lr'] * factor:.6g}")
        self.set_live("optim.lr", new)

    def action_edit_hparam(self) -> None:
        """During a run the change goes to the run only (its run.json and metrics record
        it); with no run going it edits the session, as the Model form would."""
        busy = self.training.busy
        current = self.live if busy else live_values(self.session)

        def chosen(result: tuple[str, float] | None) -> None:
            if result is not None:
                name, value = result
                value = self._as_field_type(name, value)
                if self.training.busy:
                    self.set_live(name, value)
                else:
                    self.edit(name, value)

        self.push_screen(HparamEditScreen(current, check=self._check_live, running=busy),
                         chosen)

    def set_live(self, path: str, value: Any) -> None:
        """Change a live hyperparameter of the running training, and of the run only: the
        session (what the next run starts with) and its saved state are left alone."""
        if value == self.live.get(path):
            return
        try:
            self.training.set_hparam(path, float(value))
        except LlmlabError as e:
            self.notify(str(e), severity="warning")
            return
        self.live[path] = value
        self.train_pane.show_hparams(self.live)

    def _as_field_type(self, name: str, value: float) -> Any:
        return int(value) if isinstance(get_field(self.session, name), int) else value

    def _check_live(self, name: str, value: float) -> str | None:
        """Why `value` cannot be `name`, as the session's validator says (None: it can): the
        edit dialog stays open with the line, and nothing reaches the session."""
        if isinstance(get_field(self.session, name), int) and not float(value).is_integer():
            return f"must be a whole number (got {value:g})"
        return self.document.value_problem(name, self._as_field_type(name, value))

    def run_changes(self) -> dict[str, Any]:
        """The live values the run going (or just ended) was changed to, that the session
        does not have: offered to the session, never copied without asking."""
        if self.run_session is None:
            return {}
        started = live_values(self.run_session)
        return {path: value for path, value in self.live.items()
                if value != started.get(path) and value != get_field(self.session, path)}

    def _offer_run_changes(self) -> None:
        changes = self.run_changes()
        if changes:
            self._kept_changes = changes
            shown = ", ".join(f"{path} {value:g}" for path, value in changes.items())
            self.notify(f"the run changed {shown}; the session keeps its values (palette: "
                        "\"Train: keep the run's live values\" copies them)", timeout=10)

    def action_keep_run_changes(self) -> None:
        """Copy the live values the last run was changed to into the session, if the user
        says so."""
        changes = self.run_changes() or self._kept_changes
        if not changes:
            self.notify("no live value of the run differs from the session", timeout=4)
            return
        shown = ", ".join(f"{path} = {value:g}" for path, value in changes.items())

        def answered(yes: bool | None) -> None:
            if yes:
                for path, value in changes.items():
                    self.edit(path, value, final=False)
                self._kept_changes = {}

        self.push_screen(ConfirmScreen(f"Put the run's live values into the session?\n"
                                       f"{shown}", yes="keep them", no="leave the session"),
                         answered)

    def _apply_to_run(self, path: str, value: Any) -> None:
        """A committed edit during a run: live fields go to the engine, others wait."""
        if path in LIVE_FIELDS:
            if path in self.document.problems:
                self.notify(f"{path}: {self.document.problems[path]} (not sent)",
                            severity="error")
                return
            self.set_live(path, value)
        elif self.run_session is not None and needs_restart(self.run_session, path):
            if get_field(self.run_session, path) != value:
                self.notify(f"{path} needs a restart: the running training keeps its value; "
                            "it applies to the next run", severity="warning")

    # ------------------------------------------------------------------ evaluation

    def action_evaluate(self, split: str = "val") -> None:
        """The evaluation report of the model training now, else of the loaded model, else
        of this session's newest run (loaded first), shown in the Train pane. The engine
        computes it; the screen only says it is under way."""
        job_running = self._jobs and self.training.busy
        if (job_running or not self.training.busy) and self.model_source is None \
                and self.model_loading is None:
            # (a job's weights are in another process: its latest checkpoint is evaluated)
            self.load_model(self.training.run_dir if job_running else None)
            if self.model_loading is None:
                return
        try:
            if self.client.ensure(self.session):
                self._engine_replaced()
            evaluate = msg.Evaluate(split)
            self.client.send(evaluate)
        except LlmlabError as e:
            self.notify(str(e), severity="error")
            return
        self.train_pane.evaluating(split, evaluate.request_id)
        if self.current_pane != "train":
            self.call_next(self.show_pane, "train")
