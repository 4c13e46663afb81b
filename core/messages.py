"""The engine's message API: commands in, events out.

Everything the TUI (or a script, or the CLI) does to a training run is one of these commands,
and everything it learns comes back as one of these events. They are plain, picklable
dataclasses, so the same API works in-process and across a spawned worker process's queues.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# --------------------------------------------------------------------------- commands


@dataclass
class Command:
    """Base class of everything sent to the engine."""


@dataclass
class Start(Command):
    """Start training the session; `resume` is a run folder to continue from its latest
    checkpoint (None starts a new run)."""

    resume: str | None = None


@dataclass
class Pause(Command):
    pass


@dataclass
class Resume(Command):
    pass


@dataclass
class Stop(Command):
    """Stop after the current step, saving a checkpoint that a later Start(resume=...) uses."""

    checkpoint: bool = True


@dataclass
class SetHparam(Command):
    """Change a live hyperparameter (see core.session.LIVE_FIELDS), applied at the next step.

    `name` is the dotted session path, e.g. "optim.lr".
    """

    name: str
    value: float


@dataclass
class Evaluate(Command):
    split: str = "val"


@dataclass
class SaveCheckpoint(Command):
    pass


@dataclass
class LoadRun(Command):
    """Load a finished or stopped run's model (latest checkpoint) for evaluation."""

    path: str


@dataclass
class Shutdown(Command):
    """End the worker: stops any training (with a checkpoint) and exits."""


# --------------------------------------------------------------------------- events


@dataclass
class Event:
    """Base class of everything the engine reports."""


@dataclass
class Status(Event):
    """The engine's state changed.

    state: idle | preparing | running | paused | stopping | stopped | finished | failed
    """

    state: str
    detail: str = ""


@dataclass
class RunStarted(Event):
    run_dir: str
    arch: str
    params: int
    flops_per_token: int
    vocab_size: int
    max_steps: int
    start_step: int  # > 0 when resuming
    device: str
    precision: str


@dataclass
class StepMetrics(Event):
    step: int
    tokens: int  # tokens seen so far
    loss: float
    lr: float
    grad_norm: float
    tokens_per_s: float
    mfu: float  # fraction of the device's peak FLOP/s, 0..1
    elapsed: float  # seconds of training so far (excluding pauses)
    max_steps: int = 0


@dataclass
class EvalMetrics(Event):
    step: int
    split: str
    loss: float
    perplexity: float
    top1: float
    top5: float


@dataclass
class CheckpointSaved(Event):
    step: int
    path: str
    best: bool = False


@dataclass
class HparamChanged(Event):
    step: int  # the first step that uses the new value
    name: str
    old: float
    new: float


@dataclass
class Warning(Event):  # noqa: A001 - the event's name in the API
    message: str


@dataclass
class Error(Event):
    """Something went wrong; `message` is one readable line. `fatal` ends the run."""

    message: str
    fatal: bool = True
    details: dict[str, Any] = field(default_factory=dict)
