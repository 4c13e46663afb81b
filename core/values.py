"""Domain values the engine, the CLI and the app share: torch-free, Textual-free.

They are not messages: `ModelFigures` is carried by messages (a column of the Prune pane's
before/after table), `SWEEP_LEVELS` is what a sweep measures unless asked otherwise, and
`EngineState` is what `core.messages.Status` reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

try:
    from enum import StrEnum
except ImportError:  # Python 3.10

    class StrEnum(str, Enum):  # type: ignore[no-redef]
        """enum.StrEnum of 3.11: its members are their strings, also when printed."""

        __str__ = str.__str__
        __format__ = str.__format__

SWEEP_LEVELS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)  # sparsities swept


class EngineState(StrEnum):
    """The engine's state, as `Status` events report it. A StrEnum: it equals its old bare
    string ("running" ...), so comparisons with strings and the values written to
    metrics.jsonl and run.json stay as they were."""

    IDLE = "idle"
    PREPARING = "preparing"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FINISHED = "finished"
    FAILED = "failed"
    LOST = "lost"  # a job's run whose heartbeat stopped: killed, or its machine died

    @property
    def training(self) -> bool:
        """A training is loaded and not over: running, paused or stopping."""
        return self in (EngineState.RUNNING, EngineState.PAUSED, EngineState.STOPPING)

    @property
    def busy(self) -> bool:
        """A run is being prepared, trains, is paused or is stopping."""
        return self is EngineState.PREPARING or self.training

    @property
    def ended(self) -> bool:
        """A run came to its end (finished, stopped or failed)."""
        return self in (EngineState.FINISHED, EngineState.STOPPED, EngineState.FAILED,
                        EngineState.LOST)


@dataclass
class ModelFigures:
    """One column of a before/after table (carried by ModelLoaded and Compressed)."""

    label: str  # "dense", "magnitude 50%", "magnitude 50% int8" ...
    params: int
    nonzero: int
    sparsity: float  # zeros over the prunable weights
    size_bytes: int
    loss: float  # on the workbench's fixed val sample
    perplexity: float
    top1: float
    top5: float
    latency_ms: float | None  # one forward of a full context window, batch 1; None: untrusted
    layers: list[tuple[str, float]] = field(default_factory=list)  # (layer, sparsity)
    auc: float | None = None  # macro one-vs-rest ROC AUC on the fixed sample (core.report)
    token_ms: float | None = None  # one token of cached generation; None: untrusted/unmeasured
