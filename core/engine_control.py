"""The engine's end of the run folder's control channel (core.control), alone or across ranks.

A mixin of `core.engine.Engine`: the requests another process left in the run folder are
applied between steps like the engine's own commands, and each is acknowledged in
metrics.jsonl. Under torchrun every rank must take the same commands at the same step (a rank
that paused, stopped or checkpointed alone would leave the others waiting in a collective), so
rank 0 alone reads its commands and the folder, and broadcasts what it read; every rank then
applies that list, in order.
"""

from __future__ import annotations

import queue
from typing import TYPE_CHECKING, Any

from core import messages as msg
from core.values import EngineState

if TYPE_CHECKING:
    from core.control import ControlInbox, ControlRequest

Decided = list[tuple[msg.Command, "ControlRequest | None"]]  # what every rank applies, in order
PAUSED_WAIT = 0.1  # seconds rank 0 waits for a command while paused, between broadcasts


class ControlChannel:
    """Requests from the run folder, and rank 0's decisions for every rank."""

    control: ControlInbox | None
    commands: Any
    trainer: Any
    state: EngineState
    _stop_requested: bool

    def _take_control(self, force: bool = False) -> None:
        """Apply the requests waiting in the run folder, each acknowledged in metrics.jsonl:
        applied, or refused with its one line (and the training goes on)."""
        for command, request in self._requests(force):
            self._answer(request, self._handle(command))

    def _requests(self, force: bool = False) -> Decided:
        """The run folder's waiting requests as commands; a file that is not a request is
        refused here, with its line (a warning, and its acknowledgement)."""
        from core.control import ControlRequest

        if self.control is None:
            return []
        taken: Decided = []
        for request in self.control.take(force):
            if isinstance(request, ControlRequest):
                taken.append((request.command(), request))
            else:
                self.emit(msg.Warning(request[1]))
                self._answer(ControlRequest(request[0], "unknown"), request[1])
        return taken

    def _answer(self, request: ControlRequest | None, problem: str | None) -> None:
        from core.control import ack_record

        if request is not None:
            self.trainer.writer.log(ack_record(request, self.trainer.step, problem))

    def _refuse_stale_requests(self) -> None:
        """Requests left in the folder by a job that has ended are not this job's."""
        from core.control import ack_record

        for request, why in self.control.refuse_waiting("sent before this job started; not "
                                                        "applied"):
            self.trainer.writer.log(ack_record(request, self.trainer.step, why))

    # ------------------------------------------------------------------ under torchrun

    def _drain_as_one(self) -> None:
        """Every rank applies rank 0's commands at the same step; while paused, all of them
        wait here together (rank 0 broadcasts every PAUSED_WAIT s, so no collective waits
        long enough to time out)."""
        main = self.trainer.placement.is_main
        while True:
            paused = self.state is EngineState.PAUSED and not self._stop_requested
            decided = self._decide(wait=paused) if main else self._ignore_own()
            for command, request in _broadcast(decided):
                problem = self._handle(command)
                if main:
                    self._answer(request, problem)
            if not (self.state is EngineState.PAUSED and not self._stop_requested):
                return

    def _decide(self, wait: bool) -> Decided:
        """Rank 0: its own commands (a signal's Stop) and the folder's requests, now."""
        decided: Decided = []
        while True:
            try:
                command = self.commands.get(timeout=PAUSED_WAIT) if wait and not decided \
                    else self.commands.get_nowait()
            except queue.Empty:
                break
            decided.append((command, None))
        return decided + self._requests(force=wait)

    def _ignore_own(self) -> None:
        """Another rank: its own commands (torchrun forwards a SIGTERM to every rank) are
        rank 0's to decide on."""
        while True:
            try:
                self.commands.get_nowait()
            except queue.Empty:
                return


def _broadcast(decided: Decided | None) -> Decided:
    import torch.distributed as dist

    box = [decided]
    dist.broadcast_object_list(box, src=0)
    return box[0] or []
