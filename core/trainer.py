"""The training loop, one optimizer step at a time.

`Trainer` owns everything a run needs (model, optimizer, batch stream, run folder) and exposes
the loop as small steps, `train_step`, `evaluate`, `save_checkpoint`, `set_hparam`, so that the
engine can interleave commands from the UI between steps. Reading it top to bottom is reading
nanoGPT's train.py: build, then for each step: lr, forward/backward over micro-batches, clip,
check, step, log.

Exact resume: a checkpoint holds the weights, the optimizer state, the step and token counters,
the live hyperparameters, the batch generator's state and the global RNG state (dropout), so
N straight steps and N/2 + resume + N/2 end at the same loss.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core import messages as msg
from core.checkpoint import (
    CheckpointInfo,
    check_parameter_claim,
    latest_checkpoint,
    load_checkpoint,
)
from core.collapse import CollapseWatch
from core.control import check_live_value
from core.dataset import TokenDataset, load_dataset
from core.device import (
    Placement,
    as_one,
    fit_threads,
    mfu,
    observe_flops,
    peak_flops,
    place,
    wrap_model,
)
from core.errors import LlmlabError
from core.estimate import check_session_fits, describe_model, param_count
from core.evaluate import evaluate
from core.generate import Sampling, generate_ids
from core.launch import launcher_info
from core.models import build_model
from core.optim import build_optimizer, lr_at, set_lr, set_weight_decay
from core.prune import attach_masks, cubic_sparsity, is_masked, sparsity_report, update_masks
from core.report import EvalReport, evaluation_report
from core.run_writer import RunWriter
from core.runs import load_run_session, new_run_dir
from core.session import Session
from core.threads import THREADS_EVERY
from core.tokenizers import load_tokenizer
from core.train_step import optimizer_step
from core.values import EngineState

Emit = Callable[[msg.Event], None]


SAMPLE_PROMPT_TOKENS = 8  # the eval sample continues this many tokens of the val split
SAMPLE_TOKENS = 32  # and writes at most this many


@dataclass
class LiveHparams:
    """The hyperparameters a running training can change, keyed like the session file."""

    lr: float
    weight_decay: float
    grad_clip: float
    eval_interval: int

    @classmethod
    def from_session(cls, s: Session) -> LiveHparams:
        return cls(s.optim.lr, s.optim.weight_decay, s.optim.grad_clip, s.train.eval_interval)

    def as_dict(self) -> dict[str, float]:
        return {"optim.lr": self.lr, "optim.weight_decay": self.weight_decay,
                "optim.grad_clip": self.grad_clip, "train.eval_interval": self.eval_interval}


@dataclass
class _Window:
    """Timing of the steps since the last log line, for tokens/s."""

    start: float = field(default_factory=time.perf_counter)
    tokens: int = 0
    busy: float = 0.0  # seconds spent in steps (not in evals, checkpoints or pauses)


class Trainer:
    def __init__(self, session: Session, dataset: TokenDataset, placement: Placement,
                 run_dir: Path, emit: Emit, resume_from: CheckpointInfo | None = None,
                 writer: RunWriter | None = None):
        self.session = session
        self.dataset = dataset
        self.placement = placement
        self.run_dir = run_dir
        self.emit = emit
        t, m = session.train, session.model
        self.max_steps = t.max_steps
        self.tokens_per_step = t.batch_size * t.grad_accum * m.context * placement.world_size
        self.hp = LiveHparams.from_session(session)

        torch.manual_seed(t.seed + placement.rank)
        self.model = build_model(m, dataset.tokenizer.vocab_size).to(placement.device)
        self.optimizer = build_optimizer(self.model, session.optim, placement.device_type)
        self.wrapped = wrap_model(self.model, placement, t.compile)
        self.scaler = torch.amp.GradScaler(placement.device_type,
                                           enabled=placement.precision == "fp16")
        # One batch stream for every rank: each micro-step every rank draws world_size
        # batches and trains on its own, so a run's global batch (and a resume with another
        # number of processes) is the same as one process with world_size x grad_accum.
        self.batches = torch.Generator().manual_seed(t.seed)
        self.step = 0
        self.tokens = 0
        self.elapsed = 0.0
        self.last_val_loss: float | None = None
        self.last_grad_norm: float | None = None  # the latest step's, before clipping
        self.collapse = CollapseWatch(dataset.tokenizer.vocab_size)
        self.writer = writer or RunWriter(run_dir, enabled=placement.is_main)
        self.writer.tensorboard = t.tensorboard
        self.flops_per_token = self.model.flops_per_token()
        self._peak = peak_flops(placement)
        self._window = _Window()
        self._threads_fitted = time.monotonic()
        if resume_from is not None:
            self._restore(resume_from)

    # ------------------------------------------------------------------ construction

    @classmethod
    def create(cls, session: Session, emit: Emit, resume: str | Path | None = None,
               run_dir: str | Path | None = None, info: dict | None = None) -> Trainer:
        """Build a trainer for a new run of `session` (in `run_dir` if given: a folder made
        for it by a launcher, empty or with only its log), or to continue the run at
        `resume`. Either way the run folder is claimed first (core.run_claim). `info`:
        fields for the new run's run.json (a fold's group, core.folds)."""
        placement = place(session.train.device, session.train.precision)
        if resume is not None:
            return cls._resume(Path(resume), placement, emit)
        emit(msg.Status(EngineState.PREPARING, f"opening {session.data.corpus}"))
        with as_one(placement):  # (a rank that refuses ends every rank, with its line)
            dataset = load_dataset(session.data, session.base_dir)
            _check_before_run(session, dataset, placement)  # before the folder: no empty run
            runs_root = session.resolve(session.train.runs_dir)
            if not placement.is_main:
                run_dir = runs_root
            elif run_dir is not None:
                run_dir = claimable_run_dir(Path(run_dir))
            else:
                run_dir = new_run_dir(runs_root, session.name)
        trainer = cls(session, dataset, placement, run_dir, emit)
        try:
            with as_one(placement):
                trainer.writer.claim()
                trainer.writer.write_session(_frozen(session))
                trainer.writer.write_tokenizer(dataset.tokenizer)
                trainer.writer.update_info(
                    **launcher_info(), **(info or {}),  # (a sweep's trial, a fold's group)
                    session=session.name, arch=session.model.arch, params=trainer.num_params,
                    flops_per_token=trainer.flops_per_token, max_steps=trainer.max_steps,
                    created=time.strftime("%Y-%m-%dT%H:%M:%S"), status="running", step=0,
                    hparams=trainer.hp.as_dict(), corpus=dataset.corpus.source,
                    vocab_size=dataset.tokenizer.vocab_size, device=placement.device,
                    precision=placement.precision, world_size=placement.world_size,
                    global_batch=trainer.global_batch)
        except BaseException:
            trainer.writer.close(final_state=EngineState.FAILED)
            raise
        return trainer

    @classmethod
    def _resume(cls, run_dir: Path, placement: Placement, emit: Emit) -> Trainer:
        """The trainer that continues the run at `run_dir` from its latest checkpoint, with the
        session the run was started with. What can refuse is checked before the corpus loads
        (no checkpoint, weights of another model than the session claims, a finished run);
        a finished run is never touched: saving its step N again could lose it."""
        writer = RunWriter(run_dir, enabled=placement.is_main)
        try:
            with as_one(placement):  # (a rank that refuses ends every rank, with its line)
                writer.claim(announce=False)  # (a live job's run is refused before reading)
                session = load_run_session(run_dir)
                ckpt = latest_checkpoint(run_dir / "checkpoints")
                if ckpt is None:
                    raise LlmlabError(f"{run_dir}: no complete checkpoint to resume from")
                check_parameter_claim(
                    ckpt.path, param_count(session.model, load_tokenizer(run_dir).vocab_size),
                    f"{run_dir / 'session.toml'} ({describe_model(session.model)})")
                if ckpt.step >= session.train.max_steps:
                    raise LlmlabError(f"{run_dir}: already finished (step {ckpt.step} of "
                                      f"{session.train.max_steps}), nothing to resume")
                writer.announce()
                emit(msg.Status(EngineState.PREPARING, f"opening {session.data.corpus}"))
                dataset = load_dataset(session.data, session.base_dir)
            trainer = cls(session, dataset, placement, run_dir, emit, ckpt, writer=writer)
            with as_one(placement):
                trainer.writer.truncate_metrics_after(trainer.step)
                if placement.attempt:  # (torchrun restarted the job: a process had died)
                    trainer.writer.log({"type": "restart", "step": trainer.step,
                                        "attempt": placement.attempt, "time": time.time()})
                trainer.writer.update_info(  # not "stopped" while it trains again; resized?
                    status="running", world_size=placement.world_size,
                    global_batch=trainer.global_batch)
        except BaseException:
            writer.close(final_state="stopped")
            raise
        return trainer

    @property
    def num_params(self) -> int:
        return self.model.num_params()

    @property
    def global_batch(self) -> int:
        """Sequences per optimizer step, every process's micro-batches counted."""
        t = self.session.train
        return t.batch_size * t.grad_accum * self.placement.world_size

    @property
    def done(self) -> bool:
        return self.step >= self.max_steps

    def started_event(self, start_step: int = 0) -> msg.RunStarted:
        return msg.RunStarted(
            run_dir=str(self.run_dir), arch=self.session.model.arch, params=self.num_params,
            flops_per_token=self.flops_per_token, vocab_size=self.dataset.tokenizer.vocab_size,
            max_steps=self.max_steps, start_step=start_step, device=self.placement.device,
            precision=self.placement.precision, world_size=self.placement.world_size,
            global_batch=self.global_batch)

    # ------------------------------------------------------------------ the loop

    def train_step(self) -> msg.StepMetrics | None:
        """One optimizer step over `grad_accum` micro-batches; metrics on logging steps."""
        t0 = time.perf_counter()
        lr = lr_at(self.step, self.session.optim, self.max_steps, peak_lr=self.hp.lr)
        set_lr(self.optimizer, lr)
        loss, grad_norm = optimizer_step(
            self.model, self.optimizer, self._next_batch, step=self.step + 1,
            accum=self.session.train.grad_accum, grad_clip=self.hp.grad_clip,
            forward=self.wrapped, scaler=self.scaler, autocast=self.placement.autocast)
        self.last_grad_norm = grad_norm
        self.step += 1
        self.tokens += self.tokens_per_step
        spent = time.perf_counter() - t0
        self.elapsed += spent
        self._window.busy += spent
        self._window.tokens += self.tokens_per_step
        if time.monotonic() - self._threads_fitted >= THREADS_EVERY:
            fit_threads()  # other work on the machine came or went
            self._threads_fitted = time.monotonic()
        if self.step % self.session.train.log_interval and self.step not in (1, self.max_steps):
            return None
        return self._log_step(loss, lr, grad_norm)

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's micro-batch: the rank-th of the world_size drawn now (every rank
        draws them all, so the stream stays the same on every rank)."""
        mine = None
        for rank in range(self.placement.world_size):
            batch = self.dataset.get_batch("train", self.session.train.batch_size,
                                           self.session.model.context, self.batches)
            if rank == self.placement.rank:
                mine = batch
        assert mine is not None
        x, y = mine
        return x.to(self.placement.device), y.to(self.placement.device)

    def _log_step(self, loss: float, lr: float, grad_norm: float) -> msg.StepMetrics:
        w = self._window
        tokens_per_s = w.tokens / w.busy if w.busy > 0 else 0.0
        achieved = 3 * self.flops_per_token * tokens_per_s  # forward + backward
        self._peak = observe_flops(self.placement, achieved, self._peak)
        utilisation = mfu(achieved, self._peak)
        self._window = _Window()
        event = msg.StepMetrics(step=self.step, tokens=self.tokens, loss=loss, lr=lr,
                                grad_norm=grad_norm, tokens_per_s=tokens_per_s, mfu=utilisation,
                                elapsed=self.elapsed, max_steps=self.max_steps)
        self.writer.log({"type": "train", "step": self.step, "tokens": self.tokens,
                         "loss": loss, "lr": lr, "grad_norm": grad_norm,
                         "tokens_per_s": tokens_per_s, "mfu": utilisation, "elapsed": self.elapsed,
                         "time": time.time()})
        return event

    def prune_due(self) -> bool:
        """Gradual pruning (compress.schedule = "gradual"): every `prune_every` steps from
        `begin_step`, and at `end_step`, the masks follow Zhu & Gupta's cubic schedule."""
        c = self.session.compress
        if c.schedule != "gradual" or c.sparsity == 0:
            return False
        end = self._prune_end()
        at_interval = (self.step - c.begin_step) % c.prune_every == 0
        return c.begin_step <= self.step <= end and (at_interval or self.step == end)

    def _prune_end(self) -> int:
        return self.session.compress.end_step or (3 * self.max_steps) // 4

    def prune_step(self) -> msg.SparsityChanged:
        c = self.session.compress
        target = cubic_sparsity(self.step, 0.0, c.sparsity, c.begin_step, self._prune_end())
        update_masks(self.model, c.method, target, seed=self.session.train.seed)
        sparsity = sparsity_report(self.model).sparsity
        self.writer.log({"type": "prune", "step": self.step, "target": target,
                         "sparsity": sparsity, "method": c.method, "time": time.time()})
        return msg.SparsityChanged(self.step, target, sparsity)

    def eval_due(self) -> bool:
        interval = self.hp.eval_interval
        return interval > 0 and (self.step % interval == 0 or self.done)

    def checkpoint_due(self) -> bool:
        interval = self.session.train.checkpoint_interval
        return self.step > 0 and interval > 0 and self.step % interval == 0 and not self.done

    def evaluate(self, split: str = "val") -> msg.EvalMetrics:
        t = self.session.train
        result = evaluate(self.model, self.dataset, split, t.eval_iters,
                          t.batch_size, seed=t.seed + 7, device=self.placement.device,
                          autocast=self.placement.autocast)
        if split == "val":
            self.last_val_loss = result.loss
        self.writer.log({"type": "eval", "step": self.step, "tokens": self.tokens,
                         "split": split, f"{split}_loss": result.loss,
                         f"{split}_ppl": result.perplexity, f"{split}_top1": result.top1,
                         f"{split}_top5": result.top5, "elapsed": self.elapsed,
                         "time": time.time()})
        return msg.EvalMetrics(self.step, split, result.loss, result.perplexity, result.top1,
                               result.top5)

    def collapse_warning(self) -> msg.Warning | None:
        """After a scheduled val evaluation: a Warning (also kept in metrics.jsonl) when the
        run has collapsed to uniform predictions with vanishing gradients (core.collapse)."""
        if self.last_val_loss is None:
            return None
        text = self.collapse.observe(self.step, self.last_val_loss, self.last_grad_norm)
        if text is None:
            return None
        self.writer.log({"type": "warning", "step": self.step, "message": text,
                         "time": time.time()})
        return msg.Warning(text)

    def eval_sample(self) -> msg.EvalSample:
        """A few tokens the model writes after the val split's first ones, with the session's
        [generate] sampling settings. Cheap (SAMPLE_TOKENS tokens), and it draws from the
        sampler's own seeded generator: the training RNG, and so an exact resume, are
        untouched. The prompt is token ids, never re-encoded text: nothing a tokenizer cannot
        encode can stop a run here."""
        g = self.session.generate
        sampling = dataclasses.replace(Sampling.from_config(g),
                                       max_tokens=min(g.max_tokens, SAMPLE_TOKENS))
        split = "val" if self.dataset.split_size("val") else "train"
        ids = self.dataset.split_parts(split)[0][:SAMPLE_PROMPT_TOKENS].tolist()
        new = list(generate_ids(self.model, ids, sampling, device=self.placement.device))
        decode = self.dataset.tokenizer.decode
        prompt, text = decode(ids), decode(new)
        self.writer.log({"type": "sample", "step": self.step, "prompt": prompt, "text": text,
                         "time": time.time()})
        return msg.EvalSample(self.step, prompt, text)

    def report(self, split: str = "val", iters: int | None = None) -> EvalReport:
        """The full evaluation report of the model as it is now (core.report): the whole
        split, or `iters` batches drawn as the periodic evaluation draws them."""
        t = self.session.train
        return evaluation_report(self.model, self.dataset, split, iters, t.batch_size,
                                 seed=t.seed + 7, device=self.placement.device,
                                 autocast=self.placement.autocast)

    # ------------------------------------------------------------------ live changes

    def set_hparam(self, name: str, value: float) -> msg.HparamChanged:
        """Change a live hyperparameter; it applies from the next step on."""
        value = check_live_value(name, value)
        attr = name.split(".")[1]
        old = getattr(self.hp, attr)
        setattr(self.hp, attr, value)
        if attr == "weight_decay":
            set_weight_decay(self.optimizer, value)
        self.writer.log({"type": "hparam", "step": self.step + 1, "name": name, "old": old,
                         "new": value, "time": time.time()})
        self.writer.update_info(hparams=self.hp.as_dict())
        return msg.HparamChanged(self.step + 1, name, old, value)

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> msg.CheckpointSaved:
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "batches": self.batches.get_state(),
            "torch_rng": torch.get_rng_state(),
            "step": self.step,
            "tokens": self.tokens,
            "elapsed": self.elapsed,
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        meta = {"step": self.step, "tokens": self.tokens, "val_loss": self.last_val_loss,
                "masked": is_masked(self.model),
                "hparams": self.hp.as_dict(), "arch": self.session.model.arch,
                "vocab_size": self.dataset.tokenizer.vocab_size}
        path, best = self.writer.save_checkpoint(
            self.step, self.model, state, meta,
            keep_last=self.session.train.keep_last, val_loss=self.last_val_loss)
        self.writer.update_info(step=self.step)
        return msg.CheckpointSaved(self.step, str(path), best)

    def _restore(self, ckpt: CheckpointInfo) -> None:
        if ckpt.meta.get("masked"):
            attach_masks(self.model)  # after the optimizer: it keeps the same Parameters
        state, meta = load_checkpoint(ckpt.path, self.model,
                                      device=self.placement.device)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.batches.set_state(state["batches"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.step, self.tokens = int(state["step"]), int(state["tokens"])
        self.elapsed = float(state["elapsed"])
        self.last_val_loss = meta.get("val_loss")
        for name, value in meta.get("hparams", {}).items():
            setattr(self.hp, name.split(".")[1], value)
        set_weight_decay(self.optimizer, self.hp.weight_decay)

    def finish(self, status: str, error: str | None = None) -> None:
        """Mark the run ended (`error`: the one line of a failure, kept in run.json) and end
        the claim on its folder."""
        fields = {"status": status, "step": self.step}
        if error is not None:
            fields["error"] = error
        try:
            self.writer.update_info(**fields)
        finally:
            self.writer.close(final_state=status)


def _check_before_run(session: Session, dataset: TokenDataset, placement: Placement) -> None:
    """What would fail a new run in its first steps, found before its folder exists: a split
    that cannot hold one window, a model that cannot fit in memory, no TensorBoard writer."""
    if session.train.tensorboard:
        from core.tensorboard import check_writer

        check_writer()
    dataset.check_windows("train", session.model.context)
    if session.train.eval_interval > 0:
        dataset.check_windows("val", session.model.context)
    check_session_fits(session, dataset.tokenizer.vocab_size, placement.device_type)


def claimable_run_dir(run_dir: Path) -> Path:
    """A folder a launcher made for a new run (the app, a sweep): created if missing; one
    that already holds a run is refused (resume that one instead)."""
    from core.runs import INFO_FILE, METRICS_FILE

    if (run_dir / INFO_FILE).exists() or (run_dir / METRICS_FILE).exists():
        raise LlmlabError(f"{run_dir}: already holds a run; resume it with --resume "
                          f"{run_dir}, or leave --run-dir out")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        from core.errors import disk_fault

        raise disk_fault(e, "create the run folder", run_dir) from None
    return run_dir


def _frozen(session: Session) -> Session:
    """The session as the run will see it: the corpus path made absolute, so the frozen copy
    inside the run folder still finds its data."""
    import dataclasses

    corpus = session.data.corpus
    if not corpus.startswith("sample:"):
        corpus = str(session.resolve(corpus))
    return dataclasses.replace(session, data=dataclasses.replace(session.data, corpus=corpus))
