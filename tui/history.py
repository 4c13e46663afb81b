"""What the Train pane has seen of a run: the curves it plots and the hparam changes."""

from __future__ import annotations

from dataclasses import dataclass, field

from core import messages as msg


@dataclass
class Curve:
    steps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, step: float, value: float) -> None:
        self.steps.append(step)
        self.values.append(value)

    def __len__(self) -> int:
        return len(self.steps)

    def copy(self) -> tuple[list[float], list[float]]:
        """(steps, values) as they are now (the curve keeps growing after)."""
        n = min(len(self.steps), len(self.values))
        return self.steps[:n], self.values[:n]


@dataclass
class Marker:
    """A live hyperparameter change, drawn as a vertical line at the step it applies from."""

    step: int
    name: str
    old: float
    new: float


@dataclass
class TrainHistory:
    run_dir: str = ""
    arch: str = ""
    params: int = 0
    device: str = ""
    max_steps: int = 0
    train_loss: Curve = field(default_factory=Curve)
    val_loss: Curve = field(default_factory=Curve)
    val_top1: Curve = field(default_factory=Curve)
    lr: Curve = field(default_factory=Curve)
    grad_norm: Curve = field(default_factory=Curve)
    markers: list[Marker] = field(default_factory=list)
    last_step: msg.StepMetrics | None = None
    last_eval: msg.EvalMetrics | None = None

    def started(self, event: msg.RunStarted) -> None:
        """A run began: a fresh history (a resumed run starts empty at its start step)."""
        self.__init__()  # type: ignore[misc]
        self.run_dir, self.arch, self.params = event.run_dir, event.arch, event.params
        self.device, self.max_steps = event.device, event.max_steps

    def step(self, event: msg.StepMetrics) -> None:
        self.train_loss.add(event.step, event.loss)
        self.lr.add(event.step, event.lr)
        self.grad_norm.add(event.step, event.grad_norm)
        self.last_step = event
        if event.max_steps:
            self.max_steps = event.max_steps

    def evaluated(self, event: msg.EvalMetrics) -> None:
        if event.split != "val":
            return
        self.val_loss.add(event.step, event.loss)
        self.val_top1.add(event.step, event.top1)
        self.last_eval = event

    def hparam(self, event: msg.HparamChanged) -> None:
        self.markers.append(Marker(event.step, event.name, event.old, event.new))
