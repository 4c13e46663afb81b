"""Sweep throughput: trials per hour and Optuna's overhead per trial, baby GPT at 300 steps.

    python bench/sweep.py [CORPUS] [--trials 4] [--steps 300] [--parallel 1,2]

For each `parallel`, one `core.sweep.Sweep` (what `llmlab sweep` runs) of `--trials` trials of
nanoGPT's "baby" shakespeare_char configuration (bench/train.py's `baby_session`: 4 layers,
4 heads, 128 wide, context 64, batch 12, eval every 250 steps over 200 batches) for `--steps`
steps, searching optim.lr (log, 3e-4 .. 3e-3), no pruner (every trial trains to its end, so
the trial times compare), the study in its journal file. Each trial is a real training job
(its own process, cores/parallel threads).

Printed per parallel: the sweep's wall time, trials per hour (trials / wall time), the median
trial time (from its start in Optuna to its value: job start-up, training, evaluations), and
Optuna's overhead per trial: the time the sweep's threads spent in Optuna itself, in
Study.ask (sampler + storage), the tell after each trial, Trial.report / should_prune /
set_user_attr / suggest_*, and the study's storage reads (get_trials, the count of trials
done), measured around those calls (outermost call only, so nothing counts twice) and
divided by the trials; and that as a fraction of the median trial time.

The machine is shared: the load average (uptime) is printed with the figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/tokenize.py would shadow the standard library's tokenize module for scripts run from
# this folder: take the folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

import argparse
import functools
import importlib.util
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

HERE = Path(__file__).resolve().parent


def baby_session(corpus: Path, steps: int, runs_dir: str):
    """bench/train.py's baby configuration (loaded from its file: one definition)."""
    spec = importlib.util.spec_from_file_location("bench_train", HERE / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.baby_session(corpus, steps, "fp32", runs_dir), module.DEFAULT_CORPUS


class OptunaClock:
    """Time spent inside Optuna's calls, per thread, outermost call only."""

    def __init__(self) -> None:
        self.total = 0.0
        self.calls = 0
        self._depth = threading.local()
        self._lock = threading.Lock()
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, name: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            depth = getattr(self._depth, "n", 0)
            self._depth.n = depth + 1
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self._depth.n = depth
                if depth == 0:
                    with self._lock:
                        self.total += time.perf_counter() - start
                        self.calls += 1

        setattr(owner, name, timed)
        self._undo.append(lambda: setattr(owner, name, original))

    def install(self) -> None:
        import optuna
        from optuna.study import _optimize

        from core import sweep as sweep_module

        for name in ("ask", "get_trials", "stop"):
            self.wrap(optuna.study.Study, name)
        self.wrap(_optimize, "_tell_with_warning")  # (the tell after each trial)
        for name in ("report", "should_prune", "set_user_attr", "suggest_float",
                     "suggest_int", "suggest_categorical"):
            self.wrap(optuna.trial.Trial, name)
        self.wrap(sweep_module, "counted")  # (the count of trials done, read from storage)

    def uninstall(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


def run_sweep(corpus: Path, trials: int, steps: int, parallel: int) -> dict[str, Any]:
    from optuna.trial import TrialState

    from core.sweep import Sweep

    with tempfile.TemporaryDirectory() as tmp:
        session, _ = baby_session(corpus, steps, tmp)
        session.name = f"bench-sweep-p{parallel}"
        session.base_dir = Path(tmp)
        s = session.sweep
        s.trials, s.parallel, s.sampler, s.pruner = trials, parallel, "tpe", "none"
        s.space = {"optim.lr": {"low": 3e-4, "high": 3e-3, "log": True}}
        clock = OptunaClock()
        clock.install()
        try:
            wall = time.perf_counter()
            study = Sweep(session).run()
            wall = time.perf_counter() - wall
        finally:
            clock.uninstall()
        done = study.get_trials(states=(TrialState.COMPLETE,))
        if len(done) != trials:
            states = [t.state.name for t in study.get_trials()]
            raise SystemExit(f"parallel {parallel}: {len(done)} of {trials} trials complete "
                             f"({states}; errors: "
                             f"{[t.user_attrs.get('error') for t in study.get_trials()]})")
        times = [(t.datetime_complete - t.datetime_start).total_seconds() for t in done]
    median = statistics.median(times)
    return {"parallel": parallel, "trials": trials, "wall_s": wall, "trial_s": times,
            "trials_per_hour": 3600 * trials / wall, "median_trial_s": median,
            "overhead_per_trial_s": clock.total / trials, "overhead_calls": clock.calls,
            "overhead_fraction": clock.total / trials / median}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--parallel", default="1,2")
    args = parser.parse_args()
    _, default_corpus = baby_session(Path("."), args.steps, ".")
    corpus = args.corpus or default_corpus
    if not Path(corpus).is_file():
        raise SystemExit(f"{corpus}: no such corpus; give one (tinyshakespeare.txt)")
    command = "python bench/sweep.py " + " ".join(sys.argv[1:])
    print(f"command: {command.strip()}")
    print(f"corpus {corpus}, baby GPT, {args.steps} steps a trial, {args.trials} trials, "
          f"{os.cpu_count()} cores; load before: {os.getloadavg()[0]:.2f}", flush=True)
    # (uptime's load average: the machine is shared, the figures depend on it)
    from core.dataset import load_dataset

    session, _ = baby_session(corpus, args.steps, ".")
    load_dataset(session.data)  # (tokenized once before any timing: the trials hit the cache)
    rows = []
    for parallel in (int(p) for p in args.parallel.split(",")):
        row = run_sweep(corpus, args.trials, args.steps, parallel)
        rows.append(row)
        print(f"parallel {parallel}: {row['trials']} trials in {row['wall_s']:.1f} s = "
              f"{row['trials_per_hour']:.0f} trials/hour; median trial "
              f"{row['median_trial_s']:.1f} s (each: "
              f"{', '.join(f'{t:.1f}' for t in row['trial_s'])} s); Optuna overhead "
              f"{row['overhead_per_trial_s'] * 1000:.0f} ms/trial "
              f"({row['overhead_calls']} calls in all, "
              f"{row['overhead_fraction']:.2%} of the median trial); "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
    if len(rows) > 1:
        base = rows[0]["trials_per_hour"]
        print("trials/hour vs parallel " + str(rows[0]["parallel"]) + ": " + ", ".join(
            f"parallel {r['parallel']} x{r['trials_per_hour'] / base:.2f}" for r in rows[1:]))


if __name__ == "__main__":
    main()
