"""A study made in a moment, without training: an Optuna journal study and its trials' run
folders in the shapes a real sweep writes them (core.sweep: sweep.json, journal.log, the
trials' user attributes run_dir / step / error / worker, each run's run.json and
metrics.jsonl), for the Sweep pane's tests and bench/sweep_pane.py."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

SPACE = {"optim.lr": {"low": 1e-4, "high": 1e-2, "log": True},
         "model.n_embd": {"choices": [32, 64]}}


def metrics_lines(lr: float, steps: int, eval_every: int) -> list[dict[str, Any]]:
    """A run's records: a train line a step, a val eval every `eval_every`; the loss falls
    faster the nearer lr is to 3e-3 (so the best trial is known)."""
    rate = 1.0 / (1.0 + abs(math.log10(lr / 3e-3)))
    records: list[dict[str, Any]] = []
    for step in range(1, steps + 1):
        loss = 2.0 + 3.0 * math.exp(-rate * step / steps * 4)
        records.append({"type": "train", "step": step, "tokens": step * 256, "loss": loss,
                        "lr": lr, "grad_norm": 1.0, "tokens_per_s": 1000.0, "elapsed": step})
        if step % eval_every == 0:
            records.append({"type": "eval", "step": step, "split": "val",
                            "val_loss": loss + 0.1, "val_ppl": math.exp(loss + 0.1)})
    return records


def fake_study(runs_root: Path, session: str, trials: int, *, study: str = "20260101-000000",
               running: tuple[int, ...] = (), pruned: tuple[int, ...] = (),
               failed: tuple[int, ...] = (), steps: int = 40, eval_every: int = 10,
               worker: str = "elsewhere:1:1", seed: int = 0) -> Path:
    """A study of `trials` trials over SPACE; those numbered in `running` are still running
    (half their steps written), `pruned` stopped at their first eval, `failed` failed with a
    line; the others complete. The sweep folder."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    folder = Path(runs_root) / session / f"sweep-{study}"
    folder.mkdir(parents=True)
    journal = folder / "journal.log"
    (folder / "sweep.json").write_text(json.dumps(
        {"study": study, "session": session, "storage": str(journal),
         "created": "2026-01-01T00:00:00", "space": SPACE, "trials": trials}))
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    s = optuna.create_study(storage=storage, study_name=study, direction="minimize",
                            sampler=optuna.samplers.RandomSampler(seed=seed))
    dists = {"optim.lr": FloatDistribution(1e-4, 1e-2, log=True),
             "model.n_embd": CategoricalDistribution([32, 64])}
    rng = random.Random(seed)
    for number in range(trials):
        trial = s.ask(dists)
        run_dir = Path(runs_root) / session / f"trial-{number:04d}"
        run_dir.mkdir()
        upto = steps // 2 if number in running else eval_every if number in pruned else \
            0 if number in failed else steps
        records = metrics_lines(trial.params["optim.lr"] * rng.uniform(0.98, 1.02), upto,
                                eval_every)
        with open(run_dir / "metrics.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
        vals = [r for r in records if r["type"] == "eval"]
        status = "running" if number in running else "stopped" if number in pruned else \
            "failed" if number in failed else "finished"
        (run_dir / "run.json").write_text(json.dumps(
            {"session": session, "status": status, "step": upto, "sweep": study,
             "trial": number, "best_val_loss": min((r["val_loss"] for r in vals),
                                                    default=None)}))
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("run_dir", str(run_dir))
        for r in vals:
            trial.report(r["val_loss"], r["step"])
        if vals:
            trial.set_user_attr("step", vals[-1]["step"])
        if number in running:
            continue
        if number in pruned:
            s.tell(trial, state=TrialState.PRUNED)
        elif number in failed:
            trial.set_user_attr("error", "model.n_embd: must be divisible by n_head")
            s.tell(trial, state=TrialState.FAIL)
        else:
            s.tell(trial, min(r["val_loss"] for r in vals))
    return folder
