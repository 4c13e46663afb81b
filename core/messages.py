"""The engine's message API: commands in, events out.

Everything the TUI (or a script, or the CLI) does to a training run is one of these commands,
and everything it learns comes back as one of these events. They are plain, picklable
dataclasses, so the same API works in-process and across a spawned worker process's queues.

Every command carries a request id, given when it is made (one counter per process: the sender
makes its commands), and every answer and every Error carries the id of the request it
answers, so a sender tells its own answers from another's by id alone. Events that answer no
request (a training's steps, the engine's state) carry 0.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from core.text import one_line
from core.values import SWEEP_LEVELS, EngineState, ModelFigures

_request_ids = itertools.count(1)  # (next() on it is atomic: commands made in any thread)


def next_request_id() -> int:
    """A request id not given before in this process."""
    return next(_request_ids)

# --------------------------------------------------------------------------- commands


@dataclass
class Command:
    """Base class of everything sent to the engine; `request_id` is given when it is made
    (keyword only: `Generate("jo", request_id=7)` to choose one)."""

    # (an envelope, not content: two commands asking the same are equal)
    request_id: int = field(default_factory=next_request_id, kw_only=True, compare=False)


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
    """The evaluation report (core.report) of the running training's model, else of the
    loaded one (LoadRun), else of the last run trained: over the whole split, or over `iters`
    sampled batches. Answered by `Evaluated`."""

    split: str = "val"
    iters: int | None = None


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


@dataclass
class PruneTo(Command):
    """Prune a copy of the loaded model (see LoadRun); the trained weights stay dense."""

    method: str
    sparsity: float
    seed: int = 0


@dataclass
class Sweep(Command):
    """Measure loss against sparsity, one SweepPointMeasured per level."""

    method: str
    levels: tuple[float, ...] = SWEEP_LEVELS


@dataclass
class FineTune(Command):
    """Fine-tune the pruned candidate for `steps` (pruned weights stay zero)."""

    steps: int


@dataclass
class Quantize(Command):
    """Quantize the candidate (or the dense model) to int8."""



@dataclass
class SaveCompressed(Command):
    """Save the candidate; `path` None puts it in the run's compressed/ folder."""

    path: str | None = None


@dataclass
class Generate(Command):
    """Generate from the loaded model ("dense") or the candidate ("compressed")."""

    prompt: str
    max_tokens: int = 200
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int = 0
    model: str = "dense"


@dataclass
class ScoreText(Command):
    """Score each token of `text` by its loss under the loaded model (the surprise view)."""

    text: str


@dataclass
class Cancel(Command):
    """Stop the generation, sweep or fine-tuning asked by request `target`: under way, it
    stops; still waiting in the queue, it never starts; over (or unknown), nothing happens.
    Naming it keeps a Cancel meant for a sweep from stopping the fine-tuning queued behind."""

    target: int


# --------------------------------------------------------------------------- events


@dataclass
class Event:
    """Base class of everything the engine reports; `request_id` is that of the command it
    answers (0: it answers none, e.g. a training's StepMetrics)."""

    request_id: int = field(default=0, kw_only=True, compare=False)

    def answering(self, command: Command) -> Event:
        """This event, as the answer to `command` (it carries the command's request id)."""
        self.request_id = command.request_id
        return self


@dataclass
class Status(Event):
    """The engine's state changed.

    state: one of EngineState (a StrEnum: it compares equal to "running" ...)
    """

    state: EngineState
    detail: str = ""

    def __post_init__(self) -> None:
        self.state = EngineState(self.state)  # ("failed" from a sender that wrote a string)


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
    world_size: int = 1  # processes of the job (torchrun); batch_size is per process
    global_batch: int = 0  # sequences per optimizer step, every process (0: not known)

    def processes(self) -> str:
        """'2 processes, global batch 8' for a job of several processes, else ''."""
        if self.world_size <= 1:
            return ""
        batch = f", global batch {self.global_batch}" if self.global_batch else ""
        return f"{self.world_size} processes{batch}"


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
class EvalSample(Event):
    """Text the model wrote at an evaluation: a continuation of the val split's first tokens
    (the session's [generate] settings, a few tokens), so a user sees what the loss means."""

    step: int
    prompt: str
    text: str

    def line(self) -> str:
        """Prompt and continuation on one line, safe to print: line breaks as ↵, tabs as →,
        every other control character made visible (the text comes from a corpus file)."""
        return f"{one_line(self.prompt)}│{one_line(self.text)}"


@dataclass
class Evaluated(Event):
    """The answer to Evaluate: what was evaluated, and the report as (figure, value, note)
    lines (core.report.EvalReport.rows) and as numbers (its fields)."""

    source: str  # the run folder or compressed model evaluated
    step: int  # its training step
    split: str
    scope: str  # "full val split: 12,345 tokens" / "sampled 20 batches of the val split: ..."
    rows: list[tuple[str, str, str]]
    figures: dict[str, Any] = field(default_factory=dict)


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
class SparsityChanged(Event):
    """Gradual pruning raised the masks during training."""

    step: int
    target: float  # the cubic schedule's sparsity for this step
    sparsity: float  # zeros over the prunable weights, as measured


@dataclass
class ModelLoaded(Event):
    source: str
    arch: str
    step: int
    vocab_size: int
    context: int
    dense: ModelFigures
    compression: str = ""  # what was done to a compressed model ("magnitude 50% int8"), or ""
    quantized: bool = False  # int8: it can be generated from, not pruned


@dataclass
class Compressed(Event):
    """The candidate changed (pruned, fine-tuned or quantized): its figures and the dense."""

    figures: ModelFigures
    dense: ModelFigures
    seconds: float  # how long compressing and measuring took


@dataclass
class SweepPointMeasured(Event):
    method: str
    sparsity: float
    real_sparsity: float
    loss: float
    perplexity: float
    top1: float
    top5: float
    last: bool = False


@dataclass
class FinetuneStep(Event):
    step: int
    steps: int
    loss: float


@dataclass
class CompressedSaved(Event):
    path: str


@dataclass
class Generated(Event):
    """Text streamed from a generation; `done` marks the last piece (text may be empty)."""

    text: str
    tokens: int  # generated so far
    tokens_per_s: float
    done: bool = False
    model: str = "dense"


@dataclass
class TextScored(Event):
    """The answer to ScoreText: each token's character span in the text and its loss in nats
    (NaN for the first token, which nothing predicts); `mean_loss` is over the scored ones."""

    source: str  # the loaded model that scored it
    spans: list[tuple[int, int]]
    losses: list[float]
    mean_loss: float


@dataclass
class TrainingWaits(Event):
    """A training in the same engine waits while the workbench works (a sweep, a fine-tuning,
    a generation ...): `what` it waits for, with `done` of `total` parts when counted (a
    sweep's levels); `what` "" when the training goes on again. Pause, Resume, Stop and live
    hyperparameters are still taken between the parts (a sweep's levels)."""

    what: str
    done: int = 0
    total: int = 0


@dataclass
class Warning(Event):  # noqa: A001 - the event's name in the API
    message: str


@dataclass
class Error(Event):
    """Something went wrong; `message` is one readable line. `fatal` ends the run.

    `request_id` is that of the command that failed (0 for a training run's failure), so a
    pane tells the answer to its own request from another pane's."""

    message: str
    fatal: bool = True
    details: dict[str, Any] = field(default_factory=dict)
