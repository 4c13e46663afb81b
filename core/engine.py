"""The engine: runs a Trainer and answers the message API (core.messages).

`Engine` is the same code in every shape: the CLI and the tests call `train()` in-process; the
TUI talks to it through `core.worker.EngineProcess`, a spawned process whose main loop is
`serve()`. Commands arrive on a queue and are handled between optimizer steps, so a Stop,
Pause or SetHparam takes effect within one step; every outcome is reported as an event through
`emit`. User errors (bad corpus, impossible setting, NaN) become an `Error` event with one
readable line, never an exception that takes the host down.
"""

from __future__ import annotations

import queue
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from core import messages as msg
from core.errors import DiskFault, LlmlabError, disk_fault
from core.session import Session

Emit = Callable[[msg.Event], None]


class _Cancelled(Exception):
    """A long workbench operation was cancelled by the user."""


def _error_of(e: Exception, command: msg.Command) -> msg.Error:
    """A non-fatal Error for `command`: a user's mistake as its one line, a bug as one line
    with the traceback in the details."""
    if isinstance(e, LlmlabError):
        return msg.Error(str(e), fatal=False, **_failed(command))
    return msg.Error(f"internal error: {type(e).__name__}: {e}", fatal=False,
                     details={"traceback": traceback.format_exc()}, **_failed(command))


def _failed(command: msg.Command) -> dict:
    """The Error fields that say which command failed."""
    return {"command": type(command).__name__,
            "request_id": getattr(command, "request_id", None)}


EMIT_EVERY = 0.03  # seconds between Generated events of a stream: the screen needs no more
# Workbench commands a training in the same engine waits for, as the Train pane names them.
WORKBENCH_WORK: dict[type[msg.Command], str] = {
    msg.LoadRun: "loading a model", msg.PruneTo: "pruning", msg.Sweep: "pruning sweep",
    msg.FineTune: "fine-tuning", msg.Quantize: "quantizing",
    msg.SaveCompressed: "writing the compressed model", msg.Generate: "generating",
    msg.ScoreText: "scoring text"}
# Commands for the training that are taken at once during workbench work (between a sweep's
# levels, a fine-tuning's steps, a generation's tokens), not after it.
TRAINING_CONTROLS = (msg.Pause, msg.Resume, msg.Stop, msg.SetHparam)
TRAINING_STATES = ("running", "paused", "stopping")


class _Stream:
    """One generation under way: its text not yet reported, its tokens, and the time spent
    making them (tokens/s is per stream, whatever else ran between its tokens)."""

    def __init__(self, command: msg.Generate, pieces) -> None:
        self.command = command
        self.pieces = pieces
        self.pending = ""
        self.tokens = 0
        self.busy = 0.0
        self.last_emit = time.perf_counter()
        self.done = False

    @classmethod
    def open(cls, workbench, c: msg.Generate) -> _Stream:
        from core.generate import Sampling
        from core.session import session_from_dict

        # Checked like a session's [generate] (one line naming every bad field), not left to
        # fail inside the sampler.
        sampling = Sampling.from_config(session_from_dict({"generate": {
            "max_tokens": c.max_tokens, "temperature": c.temperature, "top_k": c.top_k,
            "top_p": c.top_p, "repetition_penalty": c.repetition_penalty, "stop": list(c.stop),
            "seed": c.seed}}).generate)
        return cls(c, workbench.generate(c.prompt, sampling, c.model))

    def due(self) -> bool:
        return time.perf_counter() - self.last_emit >= EMIT_EVERY

    def advance(self) -> msg.Generated | None:
        """Make one token; the event to send now, if one is due."""
        t0 = time.perf_counter()
        piece = next(self.pieces, None)
        self.busy += time.perf_counter() - t0
        if piece is None:
            return self.finish()
        self.pending += piece
        self.tokens += 1
        if not self.due():
            return None
        return self._event(done=False)

    def finish(self) -> msg.Generated:
        self.done = True
        return self._event(done=True)

    def _event(self, done: bool) -> msg.Generated:
        c = self.command
        event = msg.Generated(c.request_id, self.pending, self.tokens,
                              self.tokens / max(self.busy, 1e-9), done=done, model=c.model)
        self.pending, self.last_emit = "", time.perf_counter()
        return event


class CommandQueue(Protocol):
    """What the engine needs of a queue: queue.Queue and multiprocessing queues both fit."""

    def get(self, block: bool = True, timeout: float | None = None) -> msg.Command: ...

    def get_nowait(self) -> msg.Command: ...


class Engine:
    def __init__(self, session: Session, emit: Emit, commands: CommandQueue | None = None):
        self.session = session
        self.emit = emit
        self.commands: CommandQueue = commands if commands is not None else queue.Queue()
        self.trainer = None  # a core.trainer.Trainer while a run is loaded
        self.workbench = None  # a core.workbench.Workbench after LoadRun
        self._deferred: list[msg.Command] = []  # arrived during a long operation
        self.state = "idle"
        self._stop_requested = False
        self._stop_checkpoint = True
        self._shutdown = False
        self._waiting = ""  # the workbench work a training waits for ("" none)

    # ------------------------------------------------------------------ worker main loop

    def serve(self) -> None:
        """Handle commands until Shutdown (the background worker's life)."""
        self._set_state("idle")
        while not self._shutdown:
            command = self._deferred.pop(0) if self._deferred else self.commands.get()
            if isinstance(command, msg.Start):
                self.train(command.resume)
            else:
                self._handle(command)

    # ------------------------------------------------------------------ one training run

    def train(self, resume: str | Path | None = None) -> str:
        """Train until max_steps, Stop, Shutdown or failure; return the final state."""
        from core.device import denormals_flushed

        with denormals_flushed():  # (a collapsing run would crawl: core.device)
            return self._train(resume)

    def _train(self, resume: str | Path | None) -> str:
        from core.optim import decay_warning
        from core.trainer import Trainer

        self._stop_requested = False
        self._stop_checkpoint = True
        self.trainer = None  # a failed start must not finish (and mark) the previous run
        try:
            self._set_state("preparing")
            self.trainer = Trainer.create(self.session, self.emit, resume)
            self.emit(self.trainer.started_event(self.trainer.step))
            if (line := decay_warning(self.trainer.session.optim)) is not None:
                self.emit(msg.Warning(line))
            self._set_state("running")
            final = self._loop()
        except KeyboardInterrupt:
            final = self._interrupt()
        except DiskFault as e:
            final = self._fail(str(e), status=f"stopped: {e.cause}")
        except OSError as e:  # a write the machine refused (metrics, run.json...)
            where = e.filename or (self.trainer.run_dir if self.trainer else None)
            fault = disk_fault(e, "write", where)
            final = self._fail(str(fault), status=f"stopped: {fault.cause}")
        except LlmlabError as e:
            final = self._fail(str(e))
        except Exception as e:  # a bug: still one readable line, details for a report
            final = self._fail(f"internal error: {type(e).__name__}: {e}",
                               traceback=traceback.format_exc())
        return final

    def _loop(self) -> str:
        t = self.trainer
        if t.step == 0 and t.eval_due():
            self._evaluate_periodic()
        while not t.done:
            self._drain_commands()
            if self._stop_requested:
                return self._finish("stopped", checkpoint=self._stop_checkpoint)
            metrics = t.train_step()
            if metrics is not None:
                self.emit(metrics)
            if t.prune_due():
                self.emit(t.prune_step())
            if t.eval_due():
                self._evaluate_periodic()
            if t.checkpoint_due():
                self.emit(t.save_checkpoint())
        return self._finish("finished", checkpoint=True)

    def _evaluate_periodic(self) -> None:
        """The periodic evaluation: its figures, a warning if the run has collapsed (not
        before the first step), then a short sample of the model's text."""
        t = self.trainer
        self.emit(t.evaluate())
        if t.step > 0 and (warning := t.collapse_warning()) is not None:
            self.emit(warning)
        self.emit(t.eval_sample())

    def _drain_commands(self) -> None:
        """Apply every waiting command; while paused, wait here for the next one. (A command
        handled here may defer others, e.g. a Resume that came during a generation: those
        come first, every time round.)"""
        while True:
            if self._deferred:
                self._handle(self._deferred.pop(0))
                continue
            block = self.state == "paused" and not self._stop_requested
            try:
                command = self.commands.get(timeout=0.5) if block else self.commands.get_nowait()
            except queue.Empty:
                if block:
                    continue
                return
            self._handle(command)

    def _handle(self, command: msg.Command) -> None:
        what = WORKBENCH_WORK.get(type(command), "")
        waits = bool(what) and self.state in TRAINING_STATES and not self._waiting
        if waits:  # the training stands still meanwhile: say so, and say when it goes on
            self._waiting = what
            self.emit(msg.TrainingWaits(what))
        try:
            self._dispatch(command)
        except Exception as e:  # noqa: BLE001 - a bug (a file torch chokes on...): keep serving
            self.emit(_error_of(e, command))
        finally:
            if waits:
                self._waiting = ""
                self.emit(msg.TrainingWaits(""))

    def _dispatch(self, command: msg.Command) -> None:
        t = self.trainer
        running = self.state in ("running", "paused")
        if isinstance(command, msg.Pause) and self.state == "running":
            self._set_state("paused", f"at step {t.step}")
        elif isinstance(command, msg.Resume) and self.state == "paused":
            self._set_state("running")
        elif isinstance(command, msg.Stop) and running:
            self._stop_requested = True
            self._stop_checkpoint = command.checkpoint
            self._set_state("stopping")
        elif isinstance(command, msg.Shutdown):
            self._shutdown = True
            if running:  # (a Stop already under way stays as it was asked)
                self._stop_requested = True
                self._stop_checkpoint = True
        elif isinstance(command, msg.SetHparam):
            if not running:
                raise LlmlabError(f"{command.name}: no training is running; edit the session")
            self.emit(t.set_hparam(command.name, command.value))
        elif isinstance(command, msg.Evaluate):
            self.emit(self._evaluate(command, running))
        elif isinstance(command, msg.LoadRun):
            self._load_bench(command.path)
        elif isinstance(command, msg.Generate):
            from core.device import leave_a_core

            with leave_a_core():  # token by token: the app beside it draws on its own core
                self._generate(command)
        elif isinstance(command, (msg.PruneTo, msg.FineTune, msg.Quantize)):
            self._compress(command)
        elif isinstance(command, msg.Sweep):
            self._sweep(command)
        elif isinstance(command, msg.SaveCompressed):
            self.emit(msg.CompressedSaved(str(self._bench().save(command.path)),
                                          command.request_id))
        elif isinstance(command, msg.ScoreText):
            self.emit(self._score_text(command))
        elif isinstance(command, msg.Cancel):
            pass  # nothing under way to cancel
        elif isinstance(command, msg.SaveCheckpoint):
            self.emit(self._loaded().save_checkpoint())
        elif isinstance(command, msg.Start):
            raise LlmlabError("a training run is already going; stop it first")
        elif isinstance(command, (msg.Pause, msg.Resume, msg.Stop)):
            pass  # nothing to pause, resume or stop: harmless
        else:
            raise LlmlabError(f"{type(command).__name__}: not supported yet")

    # ------------------------------------------------------------------ the workbench

    def _bench(self):
        """The loaded workbench (core.workbench.Workbench)."""
        if self.workbench is None:
            raise LlmlabError("no model loaded: load a run first (LoadRun)")
        return self.workbench

    def _load_bench(self, path: str) -> None:
        from core.device import place
        from core.workbench import Workbench

        self.emit(msg.Status(self.state, f"loading {path}"))
        device = place(self.session.train.device, "fp32").device
        wb = Workbench(path, device=device)
        dense = wb.dense_figures()  # (a model that cannot be measured is not loaded)
        self.workbench = wb
        from core.quantize import is_quantized

        label = wb.loaded_label()
        self.emit(msg.ModelLoaded(str(wb.bench.source), wb.bench.session.model.arch,
                                  wb.bench.step, wb.bench.tokenizer.vocab_size,
                                  wb.model.context, dense,
                                  compression="" if label == "dense" else label,
                                  quantized=is_quantized(wb.model)))

    def _compress(self, command: msg.PruneTo | msg.FineTune | msg.Quantize) -> None:
        """Make (or change) the candidate and report its figures against the dense model's."""
        wb = self._bench()
        t0 = time.perf_counter()
        if isinstance(command, msg.PruneTo):
            figures = wb.prune(command.method, command.sparsity, command.seed)
        elif isinstance(command, msg.FineTune):
            figures = wb.finetune(
                command.steps, should_stop=self._cancel_requested,
                on_step=lambda i, loss: self.emit(msg.FinetuneStep(i, command.steps, loss,
                                                                   command.request_id)))
        else:
            figures = wb.quantize()
        self.emit(msg.Compressed(figures, wb.dense_figures(), time.perf_counter() - t0,
                                 command.request_id))

    def _sweep(self, command: msg.Sweep) -> None:
        levels = list(command.levels)

        done = 0

        def on_point(p) -> None:
            nonlocal done
            done += 1
            self.emit(msg.SweepPointMeasured(command.method, p.sparsity, p.real_sparsity,
                                             p.loss, p.perplexity, p.top1, p.top5,
                                             last=p.sparsity == levels[-1],
                                             request_id=command.request_id))
            if self._waiting:
                self.emit(msg.TrainingWaits(self._waiting, done, len(levels)))
            if self._cancel_requested():
                raise _Cancelled

        try:
            self._bench().sweep(command.method, levels, on_point=on_point)
        except _Cancelled:
            pass

    def _generate(self, first: msg.Generate) -> None:
        """Stream generations, one token of each in turn: a Generate that arrives while one
        runs (side by side: the compressed model after the dense) joins it, so both columns
        fill together. A Cancel (or Shutdown) ends them all; a stream that fails (a prompt its
        tokenizer cannot encode) ends alone, with an Error naming its request."""
        wb = self._bench()
        streams = [_Stream.open(wb, first)]
        last_poll = time.perf_counter()
        while streams:
            for stream in list(streams):
                try:
                    event = stream.advance()
                except Exception as e:  # noqa: BLE001 - reported, and the others go on
                    streams.remove(stream)
                    self.emit(_error_of(e, stream.command))
                    continue
                if event is not None:
                    self.emit(event)
                if stream.done:
                    streams.remove(stream)
            if time.perf_counter() - last_poll < EMIT_EVERY:
                continue
            last_poll = time.perf_counter()
            cancelled, joining = self._poll(join_generates=True)
            for command in joining:
                try:
                    streams.append(_Stream.open(wb, command))
                except Exception as e:  # noqa: BLE001
                    self.emit(_error_of(e, command))
            if cancelled:
                for stream in streams:
                    self.emit(stream.finish())
                return

    def _poll(self, join_generates: bool = False) -> tuple[bool, list[msg.Generate]]:
        """Read the commands that came during a long operation: (whether a Cancel or Shutdown
        waits, the Generates that join a generation under way). A pause, resume, stop or live
        hyperparameter for a training waiting meanwhile is taken at once (its answer shows
        now; the training itself goes on, or stops, when the operation ends). Any other
        command, and whatever comes after a Cancel, waits for the operation to end; so does a
        Generate asked after another command (the commands keep their order)."""
        joining: list[msg.Generate] = []
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                return False, joining
            if isinstance(command, TRAINING_CONTROLS) and self.state in TRAINING_STATES:
                self._handle(command)
                continue
            if join_generates and isinstance(command, msg.Generate) and not self._deferred:
                joining.append(command)
                continue
            if isinstance(command, msg.Cancel):
                return True, joining
            self._deferred.append(command)
            if isinstance(command, msg.Shutdown):
                return True, joining

    def _score_text(self, command: msg.ScoreText) -> msg.TextScored:
        wb = self._bench()
        spans, losses = wb.score_text(command.text)
        scored = [x for x in losses if x == x]  # (the first token's NaN is not a loss)
        mean = sum(scored) / len(scored) if scored else float("nan")
        return msg.TextScored(command.request_id, str(wb.bench.source), spans, losses, mean)

    def _evaluate(self, command: msg.Evaluate, running: bool) -> msg.Evaluated:
        """The report of the model training now, else of the loaded one, else of the last
        run trained (its final weights)."""
        if running or (self.workbench is None and self.trainer is not None):
            t = self.trainer
            report = t.report(command.split, command.iters)
            source, step = str(t.run_dir), t.step
        else:
            wb = self._bench()
            report = wb.evaluate(command.split, command.iters)
            source, step = str(wb.bench.source), wb.bench.step
        return msg.Evaluated(source, step, command.split, report.scope, report.rows(),
                             report.to_dict())

    def _cancel_requested(self) -> bool:
        """Whether a Cancel (or Shutdown) waits; other commands wait for the work to end."""
        return self._poll()[0]

    def _loaded(self):
        if self.trainer is None:
            raise LlmlabError("no model loaded: start or resume a run first")
        return self.trainer

    # ------------------------------------------------------------------ endings

    def _finish(self, state: str, checkpoint: bool) -> str:
        t = self.trainer
        if checkpoint and t.step > 0:
            self.emit(t.save_checkpoint())
        t.finish(state)
        self._set_state(state, f"at step {t.step} of {t.max_steps}")
        return state

    def _interrupt(self) -> str:
        """Ctrl+C in the CLI: keep what was learned, then stop."""
        if self.trainer is not None and self.state in ("running", "paused", "stopping"):
            return self._finish("stopped", checkpoint=True)
        self._set_state("stopped")
        return "stopped"

    def _fail(self, message: str, traceback: str = "", status: str = "failed") -> str:
        """End the run on an error; `status` for run.json ("stopped: disk full" keeps a run
        the machine stopped resumable, not "failed")."""
        details = {"traceback": traceback} if traceback else {}
        self.emit(msg.Error(message, fatal=True, details=details))
        if self.trainer is not None:
            try:
                self.trainer.finish(status)
            except OSError:  # (the disk that stopped the run may refuse run.json too)
                self.trainer.writer.close()
        self._set_state("failed", message)
        return "failed"

    def _set_state(self, state: str, detail: str = "") -> None:
        self.state = state
        self.emit(msg.Status(state, detail))
