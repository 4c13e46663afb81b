"""`llmlab train | eval | sample | runs`: the headless side of training."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import queue
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.measure import Measurement
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from core.errors import LlmlabError
from core.session import Session
from core.text import one_line, visible

if TYPE_CHECKING:
    from core.runs import RunSummary

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
LoadSession = Callable[[argparse.Namespace], Session]
# A line with a path in it: never wrapped (a long path stays one pasteable line) and never
# read as markup (a folder named "[x]" is not a style).
PLAIN = {"soft_wrap": True, "markup": False, "highlight": False}


def cmd_train(args: argparse.Namespace, load_session: LoadSession) -> int:
    from core.runs import find_run

    if args.resume:
        _check_no_changes(args.overrides)
    session = load_session(args)
    resume = None
    if args.resume:
        resume = find_run(args.resume, session.resolve(session.train.runs_dir))
        _check_resumable(resume)
    if session.data.folds > 1 and resume is None and args.run_dir is None:
        from llmlab.fold_commands import train_folds  # (k runs: one per fold)

        return train_folds(args, session)
    if args.detach:
        if args.nnodes != 1 or args.rdzv_endpoint:
            raise LlmlabError("--detach: not with --nnodes/--rdzv-endpoint (a job of several "
                              "machines runs from a terminal on each: tmux, nohup)")
        if args.max_restarts < 0:
            raise LlmlabError(f"--max-restarts: must be >= 0 (got {args.max_restarts})")
        return _detach(session, resume, args.nproc, args.max_restarts)
    return train_here(args, session, resume)


def train_here(args: argparse.Namespace, session: Session, resume: Path | None,
               run_dir: Path | None = None, info: dict | None = None) -> int:
    """Train `session` (or continue `resume`) in this process, with a progress bar; the
    exit status. `run_dir`/`info`: the new run's folder and run.json fields (a fold's)."""
    from llmlab import ranks

    nproc = args.nproc or session.train.nproc
    if (nproc > 1 or args.nnodes != 1 or args.rdzv_endpoint or args.max_restarts) \
            and not ranks.under_torchrun():
        return ranks.launch_ranks(args, session, resume, nproc)
    if ranks.under_torchrun() and resume is None:
        try:  # (torchrun restarted the job's ranks: they continue its run)
            resume = ranks.restarted_run(args.run_dir)
        except LlmlabError:  # (every rank of every later attempt finds the same: rank 0
            if ranks.restart_count() == 1:  # of the first says it)
                if ranks.rank() == 0:
                    raise
                ranks.let_rank_zero_speak()
            return EXIT_BAD_INPUT
    from core.engine import Engine  # (torch: not for a launcher)
    from core.runs import PEER_DIED

    run_dir = run_dir or args.run_dir
    console = Console(stderr=True)
    view = _TrainView(console) if ranks.rank() == 0 else _QuietView(console)
    # A SimpleQueue: its put() is safe to call from a signal handler.
    engine = Engine(session, view.on_event, queue.SimpleQueue())
    final = "failed"
    try:
        with _stop_on_signals(engine) as received:
            final = engine.train(resume, run_dir=None if resume else run_dir, info=info)
    finally:
        if view.task is not None:  # started with the run: a run that never starts prints
            view.progress.stop()  # nothing but its error line
        ranks.end_group(together=final in ("stopped", "finished"))
    if ranks.under_torchrun() and final in ("stopped", "finished"):
        return EXIT_OK  # (a stop is not a failure torchrun should restart)
    for line in view.summary():
        console.print(line, **PLAIN)
    if final == "failed":
        if run_dir is not None and not view.run_dir:  # (refused before its run began)
            from core.launch import record_refusal

            record_refusal(run_dir, session.name, one_line(view.error or "failed"))
        if ranks.rank() == 0 or view.started:  # (any rank's refusal to start: rank 0's line)
            print(one_line(view.error or "training failed"), file=sys.stderr)
        # (a rank whose peer died failed for no fault of its input: 2 would tell torchrun's
        # launcher that the job refused its input, if this rank's failure came first)
        return EXIT_INTERNAL if view.error_is_internal or view.error_status == PEER_DIED \
            else EXIT_BAD_INPUT
    if final == "stopped":
        print(f"stopped at step {view.step}; continue with: llmlab train "
              f"{args.session or ''} --resume {view.run_dir}".replace("  ", " "),
              file=sys.stderr)
        return 128 + received[0] if received else EXIT_INTERRUPTED
    return EXIT_OK


def _detach(session: Session, resume: Path | None, nproc: int = 0,
            max_restarts: int = 0) -> int:
    """`llmlab train --detach`: the job starts in the background; say where it writes and
    how to watch and steer it. (A job refused at its start says why in train.log.)"""
    from core.launch import launch_training

    job = launch_training(session, resume, nproc, max_restarts=max_restarts)
    run = shlex.quote(str(job.run_dir))
    print(f"training in the background: pid {job.pid}, run folder {job.run_dir}", flush=True)
    print(f"  watch it:  llmlab attach {run}   (log: {shlex.quote(str(job.log_path))})",
          flush=True)
    print(f"  steer it:  llmlab ctl {run} pause|resume|stop|checkpoint|set optim.lr=3e-4",
          flush=True)
    return EXIT_OK


def _check_no_changes(overrides: list[str]) -> None:
    """A resumed run trains on with the session it was started with (its session.toml): a
    --set other than train.runs_dir (where to find the run) would be silently ignored."""
    ignored = [o for o in overrides if o.partition("=")[0].strip() != "train.runs_dir"]
    if ignored:
        raise LlmlabError(f"--set {ignored[0]}: not applied to a resumed run (it goes on with "
                          "the session it was started with); leave --set out, or start a new "
                          "run without --resume")


def _check_resumable(run_dir: Path) -> None:
    """A run with no complete checkpoint cannot resume: say so in one line, with its status
    (`lost, no checkpoint` when its process died) and the command that starts it again."""
    import json

    from core.run_claim import busy_error, claim_holder
    from core.runs import SESSION_FILE, has_checkpoint, run_status

    if (who := claim_holder(run_dir)) is not None:  # (a live job: name it, checkpoint or not)
        raise busy_error(run_dir, who)
    if has_checkpoint(run_dir):
        return
    status = run_status(run_dir)
    if status == "running":
        raise LlmlabError(f"{run_dir}: still running, no checkpoint yet to resume from")
    why = status if status.endswith("no checkpoint") else f"{status}, no checkpoint"
    runs_root = json.dumps(str(run_dir.absolute().parent.parent))  # (a TOML string)
    again = shlex.join(["llmlab", "train", str(run_dir / SESSION_FILE),
                        "--set", f"train.runs_dir={runs_root}"])
    raise LlmlabError(f"{run_dir}: {why} to resume from; start it again with: {again}")


@contextlib.contextmanager
def _stop_on_signals(engine) -> Iterator[list[int]]:
    """The first Ctrl+C (or SIGTERM: `kill`, systemd, a cluster scheduler) asks the engine to
    stop after the current step, so the checkpoint it saves resumes exactly (a
    KeyboardInterrupt could land mid-step, after the batch or the dropout RNG had moved on);
    a second signal of either kind interrupts at once. Yields the signals received, for the
    exit status."""
    from core import messages as msg

    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    signums = [s for s in (signal.SIGINT, signal.SIGTERM)
               if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {s: signal.getsignal(s) for s in signums}

    def stop(signum, frame) -> None:
        received.append(signum)
        for s in signums:
            signal.signal(s, signal.default_int_handler)
        engine.commands.put(msg.Stop())

    for s in signums:
        signal.signal(s, stop)
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class _QuietView:
    """Another rank than 0: rank 0 reports the run; this one keeps only its error."""

    def __init__(self, console: Console):
        self.console = console
        self.task = None
        self.step = 0
        self.run_dir = ""
        self.error: str | None = None
        self.error_is_internal = False
        self.error_status = ""  # the run.json status of a run an error stopped resumable
        self.started = False  # the run began (a refusal before: rank 0 says it, core.device)

    def on_event(self, event) -> None:
        from core import messages as msg

        self.started = self.started or isinstance(event, msg.RunStarted)
        if isinstance(event, msg.Error):
            self.error = event.message
            self.error_is_internal = event.message.startswith("internal error")
            self.error_status = str(event.details.get("status", ""))

    def summary(self) -> list[str]:
        return []


class _TrainView:
    """Turns engine events into a Rich progress bar and a few log lines."""

    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]}  val {task.fields[val]}"),
            TextColumn("{task.fields[speed]} tok/s"), TimeElapsedColumn(),
            TimeRemainingColumn(), console=console, transient=False)
        self.task = None
        self.step = 0
        self.run_dir = ""
        self.error: str | None = None
        self.error_is_internal = False
        self.error_status = ""  # the run.json status of a run an error stopped resumable
        self.best_val: float | None = None
        self.last_loss: float | None = None

    def on_event(self, event) -> None:
        from core import messages as msg

        if isinstance(event, msg.RunStarted):
            self.run_dir = event.run_dir
            scale = f", {event.processes()}" if event.processes() else ""
            self.console.print(f"run {event.run_dir}: {event.arch}, {event.params:,} parameters,"
                               f" {event.device} {event.precision}{scale}", **PLAIN)
            self.progress.start()
            self.task = self.progress.add_task("train", total=event.max_steps,
                                               completed=event.start_step, loss="-", val="-",
                                               speed="-")
        elif isinstance(event, msg.StepMetrics) and self.task is not None:
            self.step, self.last_loss = event.step, event.loss
            self.progress.update(self.task, completed=event.step, loss=f"{event.loss:.4f}",
                                 speed=f"{event.tokens_per_s:,.0f}")
        elif isinstance(event, msg.EvalMetrics) and self.task is not None:
            if event.split == "val":
                self.best_val = min(event.loss, self.best_val or event.loss)
                self.progress.update(self.task, val=f"{event.loss:.4f}")
            self.progress.console.print(
                f"step {event.step}: {event.split} loss {event.loss:.4f}, "
                f"ppl {event.perplexity:.2f}, top-1 {event.top1:.1%}, top-5 {event.top5:.1%}")
        elif isinstance(event, msg.EvalSample) and self.task is not None:
            self.progress.console.print(f"step {event.step} sample: {event.line()}",
                                        markup=False, highlight=False)
        elif isinstance(event, msg.Error):
            self.error = event.message
            self.error_is_internal = event.message.startswith("internal error")
            self.error_status = str(event.details.get("status", ""))
        elif isinstance(event, msg.Warning):
            self.progress.console.print(f"warning: {one_line(event.message)}", **PLAIN)
        elif isinstance(event, msg.CheckpointSaved):
            self.step = max(self.step, event.step)

    def summary(self) -> list[str]:
        if not self.run_dir:
            return []
        best = f", best val loss {self.best_val:.4f}" if self.best_val is not None else ""
        return [f"run folder {self.run_dir} (step {self.step}{best})"]


def cmd_eval(args: argparse.Namespace, load_session: LoadSession) -> int:
    """The full evaluation report of a run's best checkpoint or of a compressed model: over
    the whole split, or over `--iters` sampled batches, and the output says which."""
    from llmlab.compress_commands import describe_source, open_workbench

    if args.iters is not None and args.iters < 1:
        raise LlmlabError(f"--iters: must be >= 1, or left out for the whole split "
                          f"(got {args.iters})")
    wb = open_workbench(args.run, args.runs_dir)
    r = wb.evaluate(args.split, args.iters)
    console = Console()
    # A plain line, not a table title: a title would be wrapped to the table's width.
    console.print(f"{describe_source(wb)}, {r.scope}",
                  soft_wrap=True, markup=False, highlight=False)
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(no_wrap=True)
    for row in r.rows():
        table.add_row(*row)
    console.print(table)
    return EXIT_OK


def cmd_sample(args: argparse.Namespace, load_session: LoadSession) -> int:
    """Stream text from a run or a compressed model: the session's [generate] settings (stop
    strings and repetition penalty included), with the command line's overrides."""
    from core.generate import Sampling
    from llmlab.compress_commands import open_workbench

    wb = open_workbench(args.run, args.runs_dir)
    g = wb.bench.session.generate
    overrides = {"max_tokens": args.tokens, "temperature": args.temperature,
                 "top_k": args.top_k, "top_p": args.top_p, "seed": args.seed}
    s = dataclasses.replace(Sampling.from_config(g),
                            **{k: v for k, v in overrides.items() if v is not None})
    _check_sampling(s)
    prompt = _pick(args.prompt, g.prompt)
    pieces = wb.generate(prompt, s, use_cache=not args.no_cache)
    first = next(pieces, "")  # a prompt the tokenizer cannot encode fails before any output
    # (a token string comes from a tokenizer file: its control characters are shown, not
    # obeyed; line breaks and tabs stay what they are)
    sys.stdout.write(visible(prompt + first, keep="\n\t"))
    sys.stdout.flush()
    for piece in pieces:
        sys.stdout.write(visible(piece, keep="\n\t"))
        sys.stdout.flush()
    sys.stdout.write("\n")
    return EXIT_OK


def _pick(value, default):
    return default if value is None else value


def _check_sampling(s) -> None:
    problems = []
    if s.max_tokens < 1:
        problems.append(f"--tokens: must be >= 1 (got {s.max_tokens})")
    if s.temperature < 0:
        problems.append(f"--temperature: must be >= 0 (got {s.temperature})")
    if s.top_k < 0:
        problems.append(f"--top-k: must be >= 0 (got {s.top_k})")
    if not 0 < s.top_p <= 1:
        problems.append(f"--top-p: must be in (0, 1] (got {s.top_p})")
    if problems:
        raise LlmlabError("; ".join(problems))


def _label(run: RunSummary) -> str:
    """The run's name and the first line of its notes (a user's words: shown without control
    characters), "" if it has neither."""
    note = run.notes.splitlines()[0] if run.notes else ""
    return one_line(" - ".join(x for x in (run.name, note) if x))


def cmd_runs(args: argparse.Namespace, load_session: LoadSession) -> int:
    """The runs, newest first, in a table as wide as the terminal allows (the start date
    goes first: the run id has it). The run id is what the other verbs take: it is never
    cut; where even the narrow table does not fit, each run takes two lines, its id alone."""
    from core.runs import list_runs

    runs = list_runs(args.runs_dir, args.session)
    if not runs:
        print(f"no runs under {args.runs_dir}", file=sys.stderr)
        return EXIT_OK
    from core.folds import group_runs

    console = Console()
    rows = [row for item in group_runs(runs) for row in _rows(item)]
    for with_date in (True, False):
        table = _runs_table(rows, with_date)
        if Measurement.get(console, console.options.update_width(1 << 16),
                           table).maximum <= console.width:
            console.print(table)
            break
    else:
        for name, cells, label in rows:
            console.print(Text(name, style="bold"), soft_wrap=True)
            details = [f"{c} {v}" if c in NAMED else v
                       for c, v in zip(RUN_COLUMNS[1:], cells[1:], strict=True)]
            console.print(Text("  " + "  ".join(details)))
            if label:
                console.print(Text("  " + label), soft_wrap=True)
    if args.csv:
        from core.runs import export_csv

        rows = export_csv([r.path for r in runs], args.csv)
        print(f"wrote {rows} metrics records of {len(runs)} runs to {args.csv}")
    return EXIT_OK


RUN_COLUMNS = ("created", "model", "params", "steps", "best val", "tok/s", "status")
NAMED = ("params", "steps", "best val", "tok/s")  # two lines a run: these say what they are


def _run_row(r: RunSummary) -> tuple[str, list[str], str]:
    """(the run id as the other verbs take it, from the folders; its cells in RUN_COLUMNS'
    order; its name and notes, `_label`), every one without control characters (run.json
    and the folder names may come from someone else)."""
    cells = [r.created.replace("T", " "), r.model, f"{r.params:,}", f"{r.steps}/{r.max_steps}",
             "-" if r.best_val_loss is None else f"{r.best_val_loss:.4f}",
             "-" if r.tokens_per_s is None else f"{r.tokens_per_s:,.0f}", r.status]
    return (one_line(f"{r.path.parent.name}/{r.run_id}"), [one_line(c) for c in cells],
            _label(r))


def _rows(item) -> list[tuple[str, list[str], str]]:
    """A run's row; a group of fold runs' row (its val loss the folds' mean ± std), then its
    folds' rows, indented."""
    from core.folds import FoldGroup

    if not isinstance(item, FoldGroup):
        return [_run_row(item)]
    first = item.runs[0]
    summary = item.summary
    cells = [first.created.replace("T", " "), first.model, f"{first.params:,}",
             f"{len(summary.done)}/{summary.of} folds", summary.short(), "-", item.status]
    head = (one_line(f"{first.path.parent.name}/{summary.group} folds"),
            [one_line(c) for c in cells], "")
    rows = [head]
    for run in item.runs:
        name, run_cells, label = _run_row(run)
        fold = f"fold {run.folds[1]} of {run.folds[2]}" if run.folds else ""
        rows.append(("  " + name, run_cells, " - ".join(x for x in (fold, label) if x)))
    return rows


def _runs_table(rows: list[tuple[str, list[str], str]], with_date: bool) -> Table:
    from rich import box

    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    first = 0 if with_date else 1
    table.add_column("run", no_wrap=True)
    for column in RUN_COLUMNS[first:]:
        table.add_column(column, no_wrap=True, justify="left" if column in (
            "created", "model", "status") else "right")
    for name, cells, label in rows:
        # The name and notes under the id, never wider than it: the id sets the column.
        shown = label if len(label) <= len(name) else label[:len(name) - 1] + "…"
        table.add_row(Text(name + (f"\n{shown}" if label else "")),
                      *(Text(c) for c in cells[first:]))
    return table
