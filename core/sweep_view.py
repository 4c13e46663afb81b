"""A study as a viewer sees it (the app's Sweep pane): its trials, each trial's val curve, the
best value so far by trial number, and which searched fields matter (Optuna's importances).

Torch-free and Textual-free: it reads what a sweep writes, wherever the sweep runs (the app,
`llmlab sweep` in a shell, another machine on a shared database): the study's storage named in
its sweep.json, and each trial's run folder (metrics.jsonl, through core.follow's readers).
Reading again is incremental: the journal storage replays only the lines added since, and each
trial's metrics file is read from where the last read stopped, so a study of hundreds of trials
refreshes in about the time its new lines take to parse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import messages as msg
from core.follow import MetricsTail, read_thinned, record_event
from core.sweep import COMPLETE, RUNNING, TrialView, trial_view
from core.sweep_storage import SweepInfo, listed_storage
from core.text import one_line

MIN_IMPORTANCE_TRIALS = 4  # complete trials before importances mean something


@dataclass
class Curve:
    """One trial's val losses by step (from its run folder)."""

    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    last_step: int = 0  # the latest train step written


@dataclass
class StudyState:
    """What the pane shows of a study, as of one read."""

    study: str
    trials: list[TrialView] = field(default_factory=list)
    curves: dict[int, Curve] = field(default_factory=dict)  # trial number -> its val curve
    best_so_far: list[tuple[int, float]] = field(default_factory=list)  # (trial, best yet)
    importances: dict[str, float] = field(default_factory=dict)
    importance_note: str = ""  # why there are none yet ("needs 4 finished trials (2 so far)")
    space: list[str] = field(default_factory=list)  # the searched fields, in the study's order
    error: str = ""  # the one line of a study that cannot be read
    workers: set[str] = field(default_factory=set)  # the sweeps running its trials (worker_id)

    @property
    def running(self) -> bool:
        return any(t.state == RUNNING for t in self.trials)

    def best(self) -> TrialView | None:
        """The complete trial of the lowest value."""
        done = [t for t in self.trials if t.state == COMPLETE and t.best is not None]
        return min(done, key=lambda t: t.best) if done else None  # type: ignore[arg-type,return-value]


def best_so_far(trials: list[TrialView]) -> list[tuple[int, float]]:
    """(trial number, the lowest value of the complete trials up to it), for each complete
    trial in number order."""
    points, best = [], math.inf
    for t in sorted(trials, key=lambda t: t.number):
        if t.state == COMPLETE and t.best is not None:
            best = min(best, t.best)
            points.append((t.number, best))
    return points


class StudyReader:
    """Follows one study: `read()` again and again returns its state, each time reading only
    what was added since."""

    def __init__(self, info: SweepInfo):
        self.info = info
        self._storage: Any = None
        self._tails: dict[int, tuple[str, MetricsTail]] = {}  # trial -> (run dir, its tail)
        self._curves: dict[int, Curve] = {}
        self._importance_key: tuple = ()
        self._importances: dict[str, float] = {}
        self._importance_note = ""  # why there are none, when Optuna could not compute them

    def _open_study(self) -> Any:
        import optuna

        if self._storage is None:
            self._storage = listed_storage(self.info)
        return optuna.load_study(study_name=self.info.study, storage=self._storage)

    def read(self, cancelled: Any = lambda: False) -> StudyState:
        """The study now; a study that cannot be read is a state with its one-line `error`
        (and the storage is opened afresh next time)."""
        state = StudyState(self.info.study, space=list(self.info.extra.get("space") or {}))
        try:
            study = self._open_study()
            frozen = study.get_trials(deepcopy=False)
        except Exception as e:  # noqa: BLE001 (a damaged journal, a database gone: one line)
            self._storage = None
            text = (f"no study {self.info.study} in it (a damaged or foreign file?)"
                    if isinstance(e, KeyError) else one_line(str(e)) or type(e).__name__)
            state.error = f"study {self.info.study}: cannot read {self.info.storage}: {text}"
            return state
        state.trials = [trial_view(t) for t in frozen]
        state.workers = {str(t.user_attrs["worker"]) for t, v in zip(frozen, state.trials,
                                                                     strict=True)
                         if v.state == RUNNING and t.user_attrs.get("worker")}
        for name in (n for t in state.trials for n in t.params):
            if name not in state.space:
                state.space.append(name)
        for t in state.trials:
            if cancelled():
                break
            if t.run_dir:
                state.curves[t.number] = self._curve(t.number, t.run_dir)
                _latest(t, state.curves[t.number])
        state.best_so_far = best_so_far(state.trials)
        state.importances, state.importance_note = self._importance(study, state.trials)
        return state

    def _curve(self, number: int, run_dir: str) -> Curve:
        """The trial's val curve, read on from where the last read stopped."""
        known = self._tails.get(number)
        if known is None or known[0] != run_dir:
            known = (run_dir, MetricsTail(Path(run_dir) / "metrics.jsonl"))
            self._tails[number], self._curves[number] = known, Curve()
        tail, curve = known[1], self._curves[number]
        records, _ = read_thinned(tail, points=1)  # (train lines: only the latest parsed)
        for record in records:
            event = record_event(record, {})
            if isinstance(event, msg.StepMetrics):
                curve.last_step = max(curve.last_step, event.step)
            if isinstance(event, msg.EvalMetrics) and event.split == "val":
                if curve.steps and event.step <= curve.steps[-1]:  # (a resume redid steps)
                    cut = next(i for i, s in enumerate(curve.steps) if s >= event.step)
                    del curve.steps[cut:], curve.losses[cut:]
                curve.steps.append(event.step)
                curve.losses.append(event.loss)
        return curve

    def _importance(self, study: Any, trials: list[TrialView]) -> tuple[dict[str, float], str]:
        """Optuna's parameter importances once enough trials completed (computed again only
        when another one completes)."""
        done = [t.number for t in trials if t.state == COMPLETE]
        if len(done) < MIN_IMPORTANCE_TRIALS:
            return {}, (f"importances: needs {MIN_IMPORTANCE_TRIALS} finished trials "
                        f"({len(done)} so far)")
        key = tuple(done)
        if key != self._importance_key:  # (a failure is kept too: not tried again each read)
            import optuna

            self._importance_key, self._importances, self._importance_note = key, {}, ""
            try:
                found = optuna.importance.get_param_importances(study)
                self._importances = {k: float(v) for k, v in found.items()}
            except Exception as e:  # noqa: BLE001 (e.g. every trial sampled the same point)
                self._importance_note = f"importances: {one_line(str(e))}"
        return dict(self._importances), self._importance_note


def _latest(view: TrialView, curve: Curve) -> None:
    """A running trial's step and val loss as its run folder has them (the study has them
    only as of the sweep's last report)."""
    if curve.steps and curve.steps[-1] >= view.step:
        view.step, view.val_loss = curve.steps[-1], curve.losses[-1]
        if view.best is None or view.state == RUNNING:
            view.best = min(curve.losses)
    if view.state == RUNNING:
        view.step = max(view.step, curve.last_step)
