"""What the Prune pane asked the engine and waits for, and the text that says so: plain
Python (no Textual), so its rules are tested without an app.

Moving the slider fast never queues evaluations: while one PruneTo is in flight only the
newest position wanted is remembered, and sent when the answer arrives, or at once when
another request (fine-tune, int8, write) is made meanwhile: that request is for the copy at
the newest position, so it must reach the engine after it. Every request carries an id that
its answers carry back (`request_id`): each answer is matched to what it is for, answers to
requests no longer waited for (made before another model was loaded, a cancelled sweep's) are
dropped, and an older result never overwrites a newer one on the table.

The pane also edits the session (method, sparsity) and is shown the session back: `Echoes`
tells those echoes of its own edits from news.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core import messages as msg
from core.values import SWEEP_LEVELS
from tui.text import sparkline

_UNSET = object()


@dataclass
class Answer:
    """A Compressed answer to a request of the pane's."""

    kind: str  # "prune" (what: the (method, percent) asked), "finetune" (steps), "quantize"
    what: Any
    newest: bool  # answers a newer request than the one shown: it is shown


class PruneRequests:
    """The pane's requests in flight, by request id, and the sweep and fine-tuning under way.

    `send` hands a command to the engine (the pane posts it); a command is sent once made."""

    def __init__(self, send: Callable[[msg.Command], Any]) -> None:
        self._send = send
        self.requests: dict[int, tuple[str, Any]] = {}  # request id -> (kind, what)
        self.shown_id = 0  # the request whose answer the table shows: older ones never do
        self.wanted: tuple[str, int] | None = None  # the newest position asked meanwhile
        self.sweep_ids: set[int] = set()  # the sweeps of this method whose points to show
        self.sweep_points: dict[float, float] = {}  # sparsity % -> loss, of the method
        self.sweeping = False
        self.finetune_id = 0
        self.finetuning = False
        self.finetune_losses: list[float] = []
        self.finetune_at = (0, 0)  # (step, steps)
        self.saving = False

    # ------------------------------------------------------------------ asking

    def send(self, kind: str, command: msg.Command, what: Any = None) -> int:
        """Send `command`, its request id remembered as `kind` until answered (a sweep's in
        `sweep_ids`)."""
        if kind != "sweep":
            self.requests[command.request_id] = (kind, what)
        self._send(command)
        return command.request_id

    def prunes(self) -> list[tuple[str, int]]:
        """The positions of the PruneTo requests in flight, oldest first."""
        return [what for kind, what in self.requests.values() if kind == "prune"]

    @property
    def pruning(self) -> bool:
        return bool(self.prunes())

    def prune(self, wanted: tuple[str, int], now: bool = False) -> None:
        """Prune a copy to `wanted` (method, percent): when the one in flight answers, or
        `now`. A sweep under way is interrupted (a slider move is answered within a second,
        not after the whole curve) and its levels left are swept after the move."""
        in_flight = self.prunes()
        if in_flight and (not now or wanted == in_flight[-1]):
            self.wanted = None if wanted == in_flight[-1] else wanted
            return
        self.wanted = None
        levels_left = self._interrupt_sweep()
        self.send("prune", msg.PruneTo(wanted[0], wanted[1] / 100), wanted)
        if levels_left:
            self.sweep_ids.add(self.send("sweep", msg.Sweep(wanted[0], levels_left)))

    def send_wanted(self) -> None:
        """The position waiting for the PruneTo in flight, asked now: a request made after it
        (fine-tune, int8, write) is for the copy at that position."""
        if self.wanted is not None:
            self.prune(self.wanted, now=True)

    def cancel_sweeps(self) -> None:
        """Cancel the pane's sweeps (not a fine-tuning queued behind them)."""
        for request_id in self.sweep_ids:
            self._send(msg.Cancel(request_id))

    def _interrupt_sweep(self) -> tuple[float, ...]:
        if not self.sweeping:
            return ()
        self.cancel_sweeps()
        done = set(self.sweep_points)
        return tuple(level for level in SWEEP_LEVELS if round(level * 100, 1) not in done)

    def sweep(self, method: str) -> None:
        """Measure `method`'s curve from the start (a sweep under way is cancelled)."""
        if self.sweeping:
            self.cancel_sweeps()
        self.sweeping, self.sweep_points = True, {}
        self.sweep_ids = {self.send("sweep", msg.Sweep(method))}

    def forget_sweep(self) -> None:
        """A new method: its curve is to be measured, the old one's is shown no more."""
        if self.sweeping:
            self.cancel_sweeps()
        self.sweeping, self.sweep_points = False, {}

    def finetune(self, steps: int) -> None:
        self.finetuning, self.finetune_losses, self.finetune_at = True, [], (0, steps)
        self.send_wanted()
        self.finetune_id = self.send("finetune", msg.FineTune(steps), steps)

    def quantize(self) -> None:
        self.send_wanted()
        self.send("quantize", msg.Quantize())

    def save(self) -> None:
        self.saving = True
        self.send_wanted()
        self.send("save", msg.SaveCompressed())

    def cancel(self) -> str:
        """Stop the sweep and the fine-tuning under way; what to say about it ("" when
        neither is)."""
        if self.sweeping:
            self.cancel_sweeps()
        if self.finetuning:
            self._send(msg.Cancel(self.finetune_id))
        note = ""
        if self.sweeping:  # (a cancelled sweep says nothing more)
            self.sweeping, note = False, "sweep cancelled"
        if self.finetuning:
            note = "stopping the fine-tuning …"
        return note

    def clear(self) -> None:
        """Wait for no answer any more (those that still come are dropped)."""
        self.requests.clear()
        self.sweep_ids.clear()
        self.wanted = None
        self.sweeping = self.finetuning = self.saving = False

    # ------------------------------------------------------------------ answers

    def compressed(self, request_id: int) -> Answer | None:
        """A Compressed answer: what it answers (None: no request of the pane's, one made
        before this model was loaded). The position wanted meanwhile is asked now."""
        request = self.requests.pop(request_id, None)
        if request is None:
            return None
        newest = request_id > self.shown_id
        if newest:
            self.shown_id = request_id
        kind, what = request
        if kind == "prune" and self.wanted is not None and not self.pruning:
            self.prune(self.wanted)
        elif kind == "finetune":
            self.finetuning = False
        return Answer(kind, what, newest)

    def sweep_point(self, e: msg.SweepPointMeasured) -> bool:
        """A point of a sweep: whether it is one to show (not of the method or model before)."""
        if e.request_id not in self.sweep_ids:
            return False
        self.sweep_points[round(e.sparsity * 100, 1)] = e.loss
        self.sweeping &= not e.last
        return True

    def finetune_step(self, e: msg.FinetuneStep) -> bool:
        if e.request_id != self.finetune_id or not self.finetuning:
            return False
        self.finetune_losses.append(e.loss)
        self.finetune_at = (e.step, e.steps)
        return True

    def saved(self, e: msg.CompressedSaved) -> bool:
        if self.requests.pop(e.request_id, None) is None:
            return False
        self.saving = False
        return True

    def failed(self, e: msg.Error, model_request: int) -> bool:
        """An Error: whether it concerns the pane (one of its requests, which is waited for no
        more; or the app's LoadRun `model_request`: then nothing is). Another pane's failure,
        a Generate or a ScoreText, and a training's (no request id) change nothing here."""
        if not e.request_id:
            return False
        if e.request_id in self.sweep_ids:
            self.sweeping = False
            self.sweep_ids.clear()
        elif e.request_id in self.requests:
            kind, _what = self.requests.pop(e.request_id)
            if kind == "prune":
                self.wanted = None  # (the next position would most likely fail the same way)
            self.finetuning &= kind != "finetune"
            self.saving &= kind != "save"
        elif e.request_id == model_request:
            self.clear()
        else:
            return False
        return True

    # ------------------------------------------------------------------ text

    def measuring(self) -> str:
        """The position being measured ("magnitude 40%"), "" when none is."""
        in_flight = self.prunes()
        if not in_flight:
            return ""
        method, percent = self.wanted or in_flight[-1]
        return f"{method} {percent}%"

    def status_text(self, note: str, cancel_key: str) -> str:
        """What is under way (fine-tuning with its losses, measuring, quantizing, writing, the
        sweep), else `note` (the last thing done)."""
        parts = []
        if self.finetuning:
            step, steps = self.finetune_at
            losses = self.finetune_losses
            loss = f" loss {losses[-1]:.3f} " if losses else " "
            parts.append(f"fine-tuning {step}/{steps}{loss}{sparkline(losses)}"
                         f" ({cancel_key} stops)")
        if self.pruning:
            parts.append(f"measuring {self.measuring()} …")
        if any(kind == "quantize" for kind, _ in self.requests.values()):
            parts.append("quantizing …")
        if self.saving:
            parts.append("writing …")
        if self.sweeping:
            parts.append(f"sweep {len(self.sweep_points)}/{len(SWEEP_LEVELS)} …")
        if not parts and note:
            parts.append(note)
        return " · ".join(parts)

    def finetuned_note(self, val_loss: float) -> str:
        """What a finished fine-tuning did: its steps, train loss first → last, val loss."""
        losses = self.finetune_losses
        start = f"{losses[0]:.3f} → " if losses else ""
        done = (f"fine-tuned {self.finetune_at[0]} steps: train loss {start}{losses[-1]:.3f}"
                if losses else "fine-tuned")
        return f"{done}; val loss {val_loss:.3f}"


class Echoes:
    """The session edits the pane posted and the app has not shown back yet, per field: a
    value shown that is one of them (maybe after the slider moved on), or the value shown last
    time (another field changed), is no news."""

    def __init__(self, echoed: tuple[str, ...]) -> None:
        self.echoed = echoed  # the fields the pane shows (and so are shown back to it)
        self._posted: dict[str, list[Any]] = {}
        self._last_shown: dict[str, Any] = {}

    def is_echo(self, path: str, value: Any) -> bool:
        posted = self._posted.setdefault(path, [])
        last = self._last_shown.get(path, _UNSET)
        self._last_shown[path] = value
        if value in posted:
            del posted[:posted.index(value) + 1]
            return True
        if value == last:
            return True
        posted.clear()
        return False

    def to_post(self, path: str, value: Any, current: Any) -> bool:
        """Whether to post `value` of `path` (the session holds `current`): not when the
        session has it already, or will have it once the app has what was posted (the app
        would not show it back, and nothing must wait for that); remembered if it will be."""
        posted = self._posted.get(path)
        if posted:
            if posted[-1] == value:
                return False
        elif current == value and type(current) is type(value):
            return False
        if path in self.echoed:
            self._posted.setdefault(path, []).append(value)
        return True


def keys_text(key: Callable[[str], str]) -> str:
    """The pane's keys under the table, as the user's keymap has them (`key(binding id)`)."""
    return (f"{key('prune.less')}/{key('prune.more')} sparsity  {key('prune.method')} method\n"
            f"{key('prune.apply')} apply  {key('prune.finetune')} fine-tune  "
            f"{key('prune.quantize')} int8\n"
            f"{key('prune.save')} write  {key('prune.layers')} layers  "
            f"{key('prune.sweep')} sweep\n"
            f"{key('prune.cancel')} cancel sweep / fine-tune")


def no_model_hint(loading: str | None, how_to_load: str, key: Callable[[str], str]) -> str:
    """What the pane says with no model: the one `loading` (its short name), else how to
    load one and what the keys then do."""
    if loading:
        return f"loading {loading} …"
    return (f"No model loaded. {how_to_load[0].upper()}{how_to_load[1:]}.\n"
            f"Then {key('prune.less')}/{key('prune.more')} prune a copy of it "
            "to any sparsity: the trained weights stay as they are.")
