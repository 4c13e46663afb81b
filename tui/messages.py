"""The app's own messages: what widgets tell the app, and engine events as Textual messages.

Widgets never call the engine or edit the session themselves: a form control posts
`SessionEdited`, the Dataset pane posts `CorpusLoaded`, and the engine bridge
(`tui.engine_client`) turns each `core.messages` event into one of the `Engine*` messages here.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message

from core import messages as msg


class SessionEdited(Message):
    """A form control changed a session field.

    `final` is False while a value is being typed and True once it is committed (enter, leaving
    the field, a nudge, a choice): live changes reach a running training only when final, so
    typing "3e-4" never sends a learning rate of 3.
    """

    def __init__(self, path: str, value: Any, final: bool = True) -> None:
        super().__init__()
        self.path = path
        self.value = value
        self.final = final


class FieldError(Message):
    """A form control holds text that is not a value of its field (None: it is fine again)."""

    def __init__(self, path: str, error: str | None) -> None:
        super().__init__()
        self.path = path
        self.error = error


class CorpusLoaded(Message):
    """The corpus of the session's [data] was read; `view` is a tui.panes.dataset.CorpusView."""

    def __init__(self, view: Any) -> None:
        super().__init__()
        self.view = view


class CorpusFailed(Message):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message


class CorpusProgress(Message):
    def __init__(self, phase: str, fraction: float) -> None:
        super().__init__()
        self.phase = phase
        self.fraction = fraction


class EngineRequest(Message):
    """A pane asks the app to send `command` to the engine (starting the engine if needed).

    Panes never hold the engine bridge: the app owns it, and knows which model is loaded.
    """

    def __init__(self, command: msg.Command) -> None:
        super().__init__()
        self.command = command


class LoadModelRequest(Message):
    """A pane asks the app to load a run (or a compressed model) into the engine's workbench
    for the Prune and Generate panes and the surprise heatmap; `path` None: the newest run of
    the session."""

    def __init__(self, path: str | None = None) -> None:
        super().__init__()
        self.path = path


class ResumeRunRequest(Message):
    """The Runs pane asks the app to resume training a run from its latest checkpoint, or,
    `fresh`, to start a new run from its frozen session (a run with no checkpoint)."""

    def __init__(self, path: str, fresh: bool = False) -> None:
        super().__init__()
        self.path = path
        self.fresh = fresh


# --------------------------------------------------------------------------- engine events


class EngineMessage(Message):
    """An event from the engine; `event` is the core.messages dataclass."""

    def __init__(self, event: msg.Event) -> None:
        super().__init__()
        self.event = event


class EngineStatus(EngineMessage):
    event: msg.Status


class RunBegan(EngineMessage):
    event: msg.RunStarted


class StepReported(EngineMessage):
    event: msg.StepMetrics


class EvalReported(EngineMessage):
    event: msg.EvalMetrics


class CheckpointReported(EngineMessage):
    event: msg.CheckpointSaved


class HparamApplied(EngineMessage):
    event: msg.HparamChanged


class EngineWarning(EngineMessage):
    event: msg.Warning


class EngineFailed(EngineMessage):
    event: msg.Error


# The workbench's events (a loaded model, pruning, generating, scoring). The bridge posts them
# to the app and to every pane that subscribed to them (`EngineClient.subscribe`).


class ModelReady(EngineMessage):
    event: msg.ModelLoaded


class CandidateMeasured(EngineMessage):
    event: msg.Compressed


class SweepPointReported(EngineMessage):
    event: msg.SweepPointMeasured


class FinetuneReported(EngineMessage):
    event: msg.FinetuneStep


class CompressedWritten(EngineMessage):
    event: msg.CompressedSaved


class TextGenerated(EngineMessage):
    event: msg.Generated


class SurpriseScored(EngineMessage):
    event: msg.TextScored


class SparsityReported(EngineMessage):
    event: msg.SparsityChanged


class TrainingWaiting(EngineMessage):
    event: msg.TrainingWaits


class EvaluationReported(EngineMessage):
    event: msg.Evaluated


class SampleReported(EngineMessage):
    event: msg.EvalSample


_BY_EVENT: dict[type[msg.Event], type[EngineMessage]] = {
    msg.Status: EngineStatus,
    msg.RunStarted: RunBegan,
    msg.StepMetrics: StepReported,
    msg.EvalMetrics: EvalReported,
    msg.CheckpointSaved: CheckpointReported,
    msg.HparamChanged: HparamApplied,
    msg.Warning: EngineWarning,
    msg.Error: EngineFailed,
    msg.ModelLoaded: ModelReady,
    msg.Compressed: CandidateMeasured,
    msg.SweepPointMeasured: SweepPointReported,
    msg.FinetuneStep: FinetuneReported,
    msg.CompressedSaved: CompressedWritten,
    msg.Generated: TextGenerated,
    msg.TextScored: SurpriseScored,
    msg.SparsityChanged: SparsityReported,
    msg.TrainingWaits: TrainingWaiting,
    msg.Evaluated: EvaluationReported,
    msg.EvalSample: SampleReported,
}


def engine_message(event: msg.Event) -> EngineMessage:
    """The Textual message for an engine event (an unknown kind arrives as a warning)."""
    cls = _BY_EVENT.get(type(event))
    if cls is None:
        return EngineWarning(msg.Warning(f"unexpected engine event {type(event).__name__}"))
    return cls(event)
