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
from core.engine_control import ControlChannel
from core.errors import DiskFault, LlmlabError, disk_fault
from core.generation_stream import GenerationStream
from core.session import Session
from core.values import EngineState

Emit = Callable[[msg.Event], None]


class _Cancelled(Exception):
    """A long workbench operation was cancelled by the user."""


def _error_of(e: Exception, command: msg.Command) -> msg.Error:
    """A non-fatal Error for `command`: a user's mistake as its one line, a bug as one line
    with the traceback in the details."""
    if isinstance(e, LlmlabError):
        return msg.Error(str(e), fatal=False, request_id=command.request_id)
    return msg.Error(f"internal error: {type(e).__name__}: {e}", fatal=False,
                     details={"traceback": traceback.format_exc()},
                     request_id=command.request_id)


# Workbench commands a training in the same engine waits for, as the Train pane names them.
WORKBENCH_WORK: dict[type[msg.Command], str] = {
    msg.LoadRun: "loading a model", msg.PruneTo: "pruning", msg.Sweep: "pruning sweep",
    msg.FineTune: "fine-tuning", msg.Quantize: "quantizing",
    msg.SaveCompressed: "writing the compressed model", msg.Generate: "generating",
    msg.ScoreText: "scoring text"}
# Commands for the training that are taken at once during workbench work (between a sweep's
# levels, a fine-tuning's steps, a generation's tokens), not after it.
TRAINING_CONTROLS = (msg.Pause, msg.Resume, msg.Stop, msg.SetHparam)
POLL_EVERY = 0.03  # seconds between looks at the commands while generating (a Cancel's wait)


class CommandQueue(Protocol):
    """What the engine needs of a queue: queue.Queue and multiprocessing queues both fit."""

    def get(self, block: bool = True, timeout: float | None = None) -> msg.Command: ...

    def get_nowait(self) -> msg.Command: ...


class Engine(ControlChannel):
    def __init__(self, session: Session, emit: Emit, commands: CommandQueue | None = None):
        self.session = session
        self.emit = emit
        self.commands: CommandQueue = commands if commands is not None else queue.Queue()
        self.trainer = None  # a core.trainer.Trainer while a run is loaded
        self.workbench = None  # a core.workbench.Workbench after LoadRun
        self._deferred: list[msg.Command] = []  # arrived during a long operation
        self.state = EngineState.IDLE
        self._stop_requested = False
        self._stop_checkpoint = True
        self._shutdown = False
        self._waiting = ""  # the workbench work a training waits for ("" none)
        self._under_way: set[int] = set()  # request ids of the work a Cancel may name
        self._start_request = 0  # the Start of the training under way (0: train() called)
        self.control = None  # core.control.ControlInbox of the run training, if it has one

    # ------------------------------------------------------------------ worker main loop

    def serve(self) -> None:
        """Handle commands until Shutdown (the background worker's life)."""
        self._set_state(EngineState.IDLE)
        while not self._shutdown:
            command = self._deferred.pop(0) if self._deferred else self.commands.get()
            if isinstance(command, msg.Start):
                self._start_request = command.request_id
                self.train(command.resume)
            else:
                self._handle(command)

    # ------------------------------------------------------------------ one training run

    def train(self, resume: str | Path | None = None, run_dir: str | Path | None = None,
              info: dict | None = None) -> str:
        """Train until max_steps, Stop, Shutdown or failure; return the final state.
        `run_dir`: the folder of the new run (default: a new one under train.runs_dir);
        `info`: fields for its run.json (a fold's group)."""
        from core.device import denormals_flushed

        with denormals_flushed():  # (a collapsing run would crawl: core.device)
            return self._train(resume, run_dir, info)

    def _train(self, resume: str | Path | None, run_dir: str | Path | None,
               info: dict | None = None) -> str:
        from core.control import ControlInbox
        from core.optim import decay_warning
        from core.trainer import Trainer

        self._stop_requested = False
        self._stop_checkpoint = True
        self.trainer = None  # a failed start must not finish (and mark) the previous run
        self.control = None
        try:
            self._set_state(EngineState.PREPARING)
            self.trainer = Trainer.create(self.session, self.emit, resume, run_dir, info)
            if self.trainer.writer.claimed:  # (the run folder is ours: it can be steered)
                self.control = ControlInbox(self.trainer.run_dir)
                self._refuse_stale_requests()
            self.emit(self.trainer.started_event(self.trainer.step))
            if (line := decay_warning(self.trainer.session.optim)) is not None:
                self.emit(msg.Warning(line))
            self._set_state(EngineState.RUNNING)
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
            if self._peer_lost(e):
                from core.runs import PEER_DIED, has_checkpoint

                t = self.trainer
                then = "it has no checkpoint yet to resume from" if t.placement.is_main \
                    and not has_checkpoint(t.run_dir) else \
                    "resume the run from its latest checkpoint"  # (rank 0 knows the run)
                return self._fail(f"another process of this job died (rank {t.placement.rank} "
                                  f"lost its connection at step {t.step}); {then}",
                                  status=PEER_DIED)
            final = self._fail(f"internal error: {type(e).__name__}: {e}",
                               traceback=traceback.format_exc())
        return final

    def _peer_lost(self, e: Exception) -> bool:
        """A collective failed under torchrun: another rank died (gloo and nccl say so with a
        RuntimeError). Not a bug, and not the run's fault: it stops, resumable."""
        return (self.trainer is not None and self.trainer.placement.distributed
                and isinstance(e, RuntimeError))

    def _loop(self) -> str:
        t = self.trainer
        if t.step == 0 and t.eval_due():
            self._evaluate_periodic()
        while not t.done:
            self._drain_commands()
            if self._stop_requested:
                return self._finish(EngineState.STOPPED, checkpoint=self._stop_checkpoint)
            metrics = t.train_step()
            t.writer.beat(step=t.step)
            if metrics is not None:
                self.emit(metrics)
            if t.prune_due():
                self.emit(t.prune_step())
            if t.eval_due():
                self._evaluate_periodic()
            if t.checkpoint_due():
                self.emit(t.save_checkpoint())
        return self._finish(EngineState.FINISHED, checkpoint=True)

    def _evaluate_periodic(self) -> None:
        """The periodic evaluation: its figures, a warning if the run has collapsed (not
        before the first step), then a short sample of the model's text."""
        t = self.trainer
        self.emit(t.evaluate())
        if t.step > 0 and (warning := t.collapse_warning()) is not None:
            self.emit(warning)
        self.emit(t.eval_sample())

    def _drain_commands(self) -> None:
        """Apply every waiting command, and the requests waiting in the run folder's control
        channel (core.control); while paused, wait here for the next one. (A command
        handled here may defer others, e.g. a Resume that came during a generation: those
        come first, every time round.) Under torchrun, rank 0 decides for all ranks."""
        if self.trainer is not None and self.trainer.placement.distributed:
            self._drain_as_one()
            return
        while True:
            if self._deferred:
                self._handle(self._deferred.pop(0))
                continue
            self._take_control()
            block = self.state is EngineState.PAUSED and not self._stop_requested
            wait = 0.5 if self.control is None else self.control.every
            try:
                command = self.commands.get(timeout=wait) if block else self.commands.get_nowait()
            except queue.Empty:
                if block:
                    continue
                return
            self._handle(command)

    def _handle(self, command: msg.Command) -> str | None:
        """Do what `command` asks; the one line of its error, if it failed (also emitted)."""
        what = WORKBENCH_WORK.get(type(command), "")
        waits = bool(what) and self.state.training and not self._waiting
        if waits:  # the training stands still meanwhile: say so, and say when it goes on
            self._waiting = what
            self.emit(msg.TrainingWaits(what))
        self._under_way.add(command.request_id)
        try:
            self._dispatch(command)
        except Exception as e:  # noqa: BLE001 - a bug (a file torch chokes on...): keep serving
            error = _error_of(e, command)
            self.emit(error)
            return error.message
        finally:
            # (its own id, and those of the generations that joined it)
            self._under_way = set() if what else self._under_way - {command.request_id}
            if waits:
                self._waiting = ""
                self.emit(msg.TrainingWaits(""))
        return None

    def _dispatch(self, command: msg.Command) -> None:
        handler = _HANDLERS.get(type(command))
        if handler is None:
            raise LlmlabError(f"{type(command).__name__}: not supported yet")
        handler(self, command)

    # ------------------------------------------------------------------ the handlers

    def _pause(self, command: msg.Pause) -> None:
        """(Nothing running: nothing to pause, harmless.)"""
        if self.state is EngineState.RUNNING:
            self._set_state(EngineState.PAUSED, f"at step {self.trainer.step}")

    def _resume(self, command: msg.Resume) -> None:
        if self.state is EngineState.PAUSED:
            self._set_state(EngineState.RUNNING)

    def _stop(self, command: msg.Stop) -> None:
        """(A Stop already under way, or no training: nothing changes.)"""
        if self.state in (EngineState.RUNNING, EngineState.PAUSED):
            self._stop_requested = True
            self._stop_checkpoint = command.checkpoint
            self._set_state(EngineState.STOPPING)

    def _end(self, command: msg.Shutdown) -> None:
        self._shutdown = True
        if self.state in (EngineState.RUNNING, EngineState.PAUSED):
            # (a Stop already under way stays as it was asked)
            self._stop_requested = True
            self._stop_checkpoint = True

    def _set_hparam(self, command: msg.SetHparam) -> None:
        if self.state not in (EngineState.RUNNING, EngineState.PAUSED):
            raise LlmlabError(f"{command.name}: no training is running; edit the session")
        self.emit(self.trainer.set_hparam(command.name, command.value).answering(command))

    def _start_again(self, command: msg.Start) -> None:
        raise LlmlabError("a training run is already going; stop it first")

    def _save_checkpoint(self, command: msg.SaveCheckpoint) -> None:
        self.emit(self._loaded().save_checkpoint().answering(command))

    def _cancel_late(self, command: msg.Cancel) -> None:
        """A Cancel read when its target is over (or was never sent): nothing to stop."""

    def _load(self, command: msg.LoadRun) -> None:
        self._load_bench(command)

    def _save_compressed(self, command: msg.SaveCompressed) -> None:
        self.emit(msg.CompressedSaved(str(self._bench().save(command.path)),
                                      request_id=command.request_id))

    def _score(self, command: msg.ScoreText) -> None:
        self.emit(self._score_text(command))

    def _evaluate_now(self, command: msg.Evaluate) -> None:
        self.emit(self._evaluate(command))

    # ------------------------------------------------------------------ the workbench

    def _bench(self):
        """The loaded workbench (core.workbench.Workbench)."""
        if self.workbench is None:
            raise LlmlabError("no model loaded: load a run first (LoadRun)")
        return self.workbench

    def _load_bench(self, command: msg.LoadRun) -> None:
        from core.device import place
        from core.workbench import Workbench

        path = command.path
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
                                  quantized=is_quantized(wb.model),
                                  request_id=command.request_id))

    def _compress(self, command: msg.PruneTo | msg.FineTune | msg.Quantize) -> None:
        """Make (or change) the candidate and report its figures against the dense model's."""
        wb = self._bench()
        t0 = time.perf_counter()
        if isinstance(command, msg.PruneTo):
            figures = wb.prune(command.method, command.sparsity, command.seed)
        elif isinstance(command, msg.FineTune):
            figures = wb.finetune(
                command.steps, should_stop=self._cancel_requested,
                on_step=lambda i, loss: self.emit(msg.FinetuneStep(
                    i, command.steps, loss, request_id=command.request_id)))
        else:
            figures = wb.quantize()
        self.emit(msg.Compressed(figures, wb.dense_figures(), time.perf_counter() - t0,
                                 request_id=command.request_id))

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
        from core.device import fit_threads
        from core.threads import THREADS_EVERY

        wb = self._bench()
        # Every core the machine leaves free, the app's included: it draws only a few times a
        # second (core.generation_stream), and each core's cache holds its share of the weights.
        fit_threads()
        streams = [GenerationStream.open(wb, first)]
        last_poll = last_fit = time.perf_counter()
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
            now = time.perf_counter()
            if now - last_poll < POLL_EVERY:
                continue
            last_poll = now
            if now - last_fit >= THREADS_EVERY:
                fit_threads()  # other work on the machine came or went
                last_fit = now
            cancelled, joining = self._poll(join_generates=True)
            for command in joining:
                try:
                    streams.append(GenerationStream.open(wb, command))
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
            if isinstance(command, TRAINING_CONTROLS) and self.state.training:
                self._handle(command)
                continue
            if join_generates and isinstance(command, msg.Generate) and not self._deferred:
                joining.append(command)
                self._under_way.add(command.request_id)  # (ended with the first: _handle)
                continue
            if isinstance(command, msg.Cancel):
                if command.target in self._under_way:
                    return True, joining
                # A request still waiting never starts; one over (or unknown): nothing to do.
                self._deferred = [c for c in self._deferred if c.request_id != command.target]
                continue
            self._deferred.append(command)
            if isinstance(command, msg.Shutdown):
                return True, joining

    def _score_text(self, command: msg.ScoreText) -> msg.TextScored:
        wb = self._bench()
        spans, losses = wb.score_text(command.text)
        scored = [x for x in losses if x == x]  # (the first token's NaN is not a loss)
        mean = sum(scored) / len(scored) if scored else float("nan")
        return msg.TextScored(str(wb.bench.source), spans, losses, mean,
                              request_id=command.request_id)

    def _evaluate(self, command: msg.Evaluate) -> msg.Evaluated:
        """The report of the model training now, else of the loaded one, else of the last
        run trained (its final weights)."""
        running = self.state in (EngineState.RUNNING, EngineState.PAUSED)
        if running or (self.workbench is None and self.trainer is not None):
            t = self.trainer
            report = t.report(command.split, command.iters)
            source, step = str(t.run_dir), t.step
        else:
            wb = self._bench()
            report = wb.evaluate(command.split, command.iters)
            source, step = str(wb.bench.source), wb.bench.step
        return msg.Evaluated(source, step, command.split, report.scope, report.rows(),
                             report.to_dict(), request_id=command.request_id)

    def _cancel_requested(self) -> bool:
        """Whether a Cancel (or Shutdown) waits; other commands wait for the work to end."""
        return self._poll()[0]

    def _loaded(self):
        if self.trainer is None:
            raise LlmlabError("no model loaded: start or resume a run first")
        return self.trainer

    # ------------------------------------------------------------------ endings

    def _finish(self, state: EngineState, checkpoint: bool) -> str:
        t = self.trainer
        if checkpoint and t.step > 0:
            self.emit(t.save_checkpoint())
        t.finish(state)
        self._set_state(state, f"at step {t.step} of {t.max_steps}")
        return state

    def _interrupt(self) -> str:
        """Ctrl+C in the CLI: keep what was learned, then stop."""
        if self.trainer is not None and self.state.training:
            return self._finish(EngineState.STOPPED, checkpoint=True)
        self._set_state(EngineState.STOPPED)
        return EngineState.STOPPED

    def _fail(self, message: str, traceback: str = "", status: str = "failed") -> str:
        """End the run on an error; `status` for run.json ("stopped: disk full" keeps a run
        the machine stopped resumable, not "failed")."""
        details: dict = {"traceback": traceback} if traceback else {}
        if status != "failed":  # (the run stopped resumable: its run.json status says why)
            details["status"] = status
        self.emit(msg.Error(message, fatal=True, details=details,
                            request_id=self._start_request))
        if self.trainer is not None:
            try:
                self.trainer.finish(status, error=message)
            except OSError:  # (the disk that stopped the run may refuse run.json too)
                self.trainer.writer.close(final_state=EngineState.FAILED)
        self._set_state(EngineState.FAILED, message)
        return EngineState.FAILED

    def _set_state(self, state: EngineState, detail: str = "") -> None:
        self.state = state
        if self.trainer is not None:
            self.trainer.writer.beat(state=state)
        self.emit(msg.Status(state, detail))


# What the engine does with each command (a Start while idle is `serve`'s: it trains).
_HANDLERS: dict[type[msg.Command], Callable[[Engine, msg.Command], None]] = {
    msg.Pause: Engine._pause, msg.Resume: Engine._resume, msg.Stop: Engine._stop,
    msg.Shutdown: Engine._end, msg.SetHparam: Engine._set_hparam, msg.Start: Engine._start_again,
    msg.Evaluate: Engine._evaluate_now, msg.SaveCheckpoint: Engine._save_checkpoint,
    msg.LoadRun: Engine._load, msg.Generate: Engine._generate,
    msg.PruneTo: Engine._compress, msg.FineTune: Engine._compress, msg.Quantize: Engine._compress,
    msg.Sweep: Engine._sweep, msg.SaveCompressed: Engine._save_compressed,
    msg.ScoreText: Engine._score, msg.Cancel: Engine._cancel_late}
