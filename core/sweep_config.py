"""The session's `[sweep]` section: an Optuna study over the session's own fields.

    [sweep]
    trials = 20          parallel = 1          sampler = "tpe"        pruner = "median"
    [sweep.space]        # quoted dotted session fields
    "optim.lr" = { low = 1e-4, high = 1e-2, log = true }
    "model.n_embd" = { choices = [64, 128, 256] }

The space is kept as the plain tables the file holds (so a session saves and reloads as
written); `space_problems` checks each entry against the field it names (its type and range
from the schema), one line per problem. Optuna itself is imported only by core/sweep.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.knobs import knob

if TYPE_CHECKING:
    from core.session import Session

MAX_TRIALS = 1_000_000
MAX_PARALLEL = 1024
SPACE_KEYS = ("low", "high", "log", "step", "choices")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

SPACE_DOC = """\
# [sweep.space]: the fields the study searches, by quoted dotted name, each with
#   { low = ..., high = ..., log = true|false, step = ... }  (a numeric field), or
#   { choices = [...] }                                      (any field). For example:
# "optim.lr" = { low = 1e-4, high = 1e-2, log = true }
# "model.n_embd" = { choices = [64, 128, 256] }
# "train.batch_size" = { choices = [8, 16, 32] }"""


@dataclass
class SweepConfig:
    trials: int = knob(20, "trials the study runs (llmlab sweep)", lo=1, cap=MAX_TRIALS)
    parallel: int = knob(1, "trials at once; each job gets cores/parallel threads", lo=1,
                         cap=MAX_PARALLEL)
    sampler: str = knob("tpe", "how the next point is chosen (grid: every combination)",
                        choices=("tpe", "random", "grid"))
    pruner: str = knob("median", "stops hopeless trials early, from their val losses",
                       choices=("median", "hyperband", "none"))
    pruner_startup: int = knob(5, "median: trials that finish before it stops any", lo=0,
                               cap=MAX_TRIALS)
    metric: str = knob("val_loss", "what the study minimises (the trial's best)",
                       choices=("val_loss",))
    timeout: float = knob(0.0, "seconds before no new trial starts; 0 = none", lo=0.0)
    storage: str = knob("", "\"\" = an Optuna journal file in the sweep's folder; or an "
                            "Optuna storage URL (sqlite:///..., postgresql://...)")
    # The searched fields: {"optim.lr": {"low": ..., "high": ..., "log": true}, ...}
    space: dict[str, dict[str, Any]] = field(default_factory=dict, metadata={"table": True})


# Fields a point of the space must not set: what a trial's value means depends on them.
NOT_SEARCHED = {
    "data.folds": "every trial is scored over the session's folds; set data.folds itself",
    "data.fold": "llmlab train sets it on each fold's run",
}


def storage_problem(url: str) -> str | None:
    """What is wrong with `sweep.storage` as written (cheap: nothing is opened)."""
    if url and not _URL.match(url):
        return f"must be \"\" or a storage URL like sqlite:///study.db (got {url!r})"
    return None


def space_problems(raw: Any, session: Session) -> list[str]:
    """Every problem of the `[sweep.space]` table, one line each, named
    `sweep.space."FIELD"`; also the grid sampler's need for a finite grid."""
    if not isinstance(raw, dict):
        return [f"sweep.space: must be a table [sweep.space] (got {raw!r})"]
    problems: list[str] = []
    for name, entry in raw.items():
        problems += _entry_problems(name, entry)
    if session.sweep.sampler == "grid":
        for name, entry in raw.items():
            if isinstance(entry, dict) and "choices" not in entry and "step" not in entry \
                    and not isinstance(entry.get("low"), int):
                problems.append(f"sweep.sampler: grid needs choices or a step for every "
                                f"searched field (\"{name}\" has neither)")
    return problems


def _entry_problems(name: str, entry: Any) -> list[str]:
    from core.session import check_field_value, field_kind

    where = f"sweep.space.\"{name}\""
    try:
        kind = field_kind(name)
    except KeyError as e:
        return [f"{where}: {e.args[0]}"]
    if kind is list:
        return [f"{where}: a list field cannot be searched"]
    if name in NOT_SEARCHED:
        return [f"{where}: cannot be searched ({NOT_SEARCHED[name]})"]
    if not isinstance(entry, dict):
        return [f"{where}: must be a table {{ low = ..., high = ... }} or {{ choices = [...] }} "
                f"(got {entry!r})"]
    problems = [f"{where}.{key}: unknown key (known: {', '.join(SPACE_KEYS)})"
                for key in entry if key not in SPACE_KEYS]
    has_range = "low" in entry or "high" in entry
    if "choices" in entry:
        choices = entry["choices"]
        if has_range or "log" in entry or "step" in entry:
            problems.append(f"{where}: give either choices or low/high, not both")
        if not isinstance(choices, list) or not choices:
            problems.append(f"{where}.choices: must be a non-empty list (got {choices!r})")
        else:
            for value in choices:
                if (problem := check_field_value(name, value)) is not None:
                    problems.append(f"{where}.choices: {value!r}: {problem}")
        return problems
    if kind not in (int, float):
        return [*problems, f"{where}: needs choices (the field is not a number)"]
    if "low" not in entry or "high" not in entry:
        return [*problems, f"{where}: needs low and high, or choices"]
    low, high, log, step = entry["low"], entry["high"], entry.get("log", False), entry.get("step")
    for key, value in (("low", low), ("high", high)):
        if (problem := check_field_value(name, value)) is not None:
            problems.append(f"{where}.{key}: {problem} (got {value!r})")
    if not isinstance(log, bool):
        problems.append(f"{where}.log: must be true or false (got {log!r})")
    if problems:
        return problems
    if low > high:
        problems.append(f"{where}: low must be <= high ({low:g} > {high:g})")
    if log and low <= 0:
        problems.append(f"{where}: log needs low > 0 (got {low:g})")
    if step is not None:
        if not _number(step) or step <= 0 or (kind is int and not isinstance(step, int)):
            problems.append(f"{where}.step: must be a positive {kind.__name__} (got {step!r})")
        elif log:
            problems.append(f"{where}: log and step cannot both be set")
    return problems


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def dumps_space(space: dict[str, dict[str, Any]]) -> list[str]:
    """The `[sweep.space]` table as TOML lines, one inline table per field."""
    from core.session import toml_value

    lines = ["[sweep.space]", SPACE_DOC]
    for name, entry in space.items():
        inner = ", ".join(f"{key} = {toml_value(value)}" for key, value in entry.items())
        lines.append(f"{toml_value(name)} = {{ {inner} }}")
    return lines
