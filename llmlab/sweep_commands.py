"""`llmlab sweep` and `llmlab sweeps`: an Optuna study over a session, headless, with a live
table; and the list of the studies under a runs folder."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from core.errors import LlmlabError
from core.text import one_line

EXIT_OK, EXIT_NONE_COMPLETE, EXIT_INTERRUPTED = 0, 1, 130


def add_parsers(sub) -> None:
    sweep = sub.add_parser(
        "sweep", help="tune the session: an Optuna study over its [sweep.space], each trial a "
                      "training job, with a live table",
        description="Run the session's [sweep] study: each trial trains a copy of the session "
                    "with sampled values as a job of its own (its run folder under the runs "
                    "folder), pruned early when hopeless; ends with the best trial.")
    sweep.add_argument("session", metavar="SESSION.toml", help="session file")
    sweep.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE", help="override a field, e.g. train.max_steps=300")
    sweep.add_argument("--trials", type=int, metavar="N", help="trials in all (sweep.trials)")
    sweep.add_argument("--parallel", type=int, metavar="K",
                       help="trials at once (sweep.parallel)")
    sweep.add_argument("--resume", metavar="STUDY",
                       help="continue the study STUDY (after a crash or Ctrl+C; or as one "
                            "more worker of a study in a shared storage)")
    sweep.add_argument("--study", metavar="NAME",
                       help="name the new study (default: its start time)")
    sweep.add_argument("--stop", metavar="STUDY",
                       help="ask every process running the study STUDY to stop, on any "
                            "machine sharing its storage, as Ctrl+C stops one (its running "
                            "trials save and stop; --resume continues it)")
    sweeps = sub.add_parser("sweeps", help="list the sweeps (studies) under a runs folder")
    sweeps.add_argument("session", nargs="?", help="only this session's sweeps")
    sweeps.add_argument("--runs-dir", default="runs", type=Path,
                        help="where runs live (default: ./runs)")


def cmd_sweep(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    from core.session import load_session
    from core.sweep import JOURNAL_FILE, Interrupted, Sweep

    # (stopped as Ctrl+C stops it, also when started as a job by a process that ignores it)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    overrides = list(args.overrides)
    for name, value in (("trials", args.trials), ("parallel", args.parallel)):
        if value is not None:
            overrides.append(f"sweep.{name}={value}")
    if args.study is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}",
                                                   args.study):
        raise LlmlabError(f"--study {args.study!r}: a name of letters, digits, '.', '_' "
                          "and '-' (it names the sweep's folder)")
    if args.study is not None and args.resume is not None:
        raise LlmlabError("--study names a new study; --resume continues one: give one")
    session = load_session(args.session, overrides)
    if args.stop is not None:
        if args.study is not None or args.resume is not None:
            raise LlmlabError("--stop: alone (not with --study or --resume)")
        return _ask_to_stop(session, args.stop, args.session)
    sweep = Sweep(session, args.resume or args.study, resume=args.resume is not None)
    study = sweep.open()
    console = Console()
    where = session.sweep.storage or sweep.folder / JOURNAL_FILE
    console.print(f"study {sweep.study_name} of {session.name}: {session.sweep.trials} trials, "
                  f"{session.sweep.parallel} at once, in {where}")
    outcome: dict[str, BaseException] = {}

    done = threading.Event()

    def work() -> None:
        try:
            sweep.run()
        except BaseException as e:  # noqa: BLE001 (handed to the main thread)
            outcome["error"] = e
        finally:
            done.set()

    # (waited on through an Event: a Thread.join interrupted by Ctrl+C can leave the thread
    # looking finished while it still stops its trials)
    worker = threading.Thread(target=work, name="sweep", daemon=True)
    interrupted = False
    with Live(get_renderable=lambda: trials_table(sweep), console=console,
              refresh_per_second=2) as live:
        worker.start()
        while not done.is_set():
            try:
                done.wait(0.25)
            except KeyboardInterrupt:  # (stop the running trials, then say how to go on)
                if interrupted:  # (a second one: leave now; --resume settles what is left)
                    break
                interrupted = True
                sweep.stop()
                console.print("stopping the running trials ... (Ctrl+C again: leave them "
                              "to --resume)")
        live.refresh()
    if not console.is_terminal:
        console.line()  # (the table's last line has no newline of its own there)
    error = outcome.get("error")
    resume = f"llmlab sweep {args.session} --resume {sweep.study_name}"
    if interrupted or isinstance(error, Interrupted):
        asked = f" (stop asked by {sweep.stopped_by})" if sweep.stopped_by else ""
        print(f"interrupted{asked}; continue with: {resume}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if error is not None:
        raise error
    return _print_best(console, study, resume)


def _ask_to_stop(session: Any, study: str, session_file: str) -> int:
    """`llmlab sweep SESSION --stop STUDY`."""
    from core.sweep import worker_id
    from core.sweep_storage import list_sweeps, request_stop, sweeps_root

    info = next((s for s in list_sweeps(sweeps_root(session).parent)
                 if s.study == study and s.session == session.name), None)
    if info is None:
        raise LlmlabError(f"{study}: no such sweep of session {session.name} under "
                          f"{sweeps_root(session).parent}; llmlab sweeps lists them")
    request_stop(info, worker_id())
    print(f"asked every process of study {study} to stop (each looks every few seconds; its "
          f"running trials save and stop); continue with: llmlab sweep {session_file} "
          f"--resume {study}")
    return EXIT_OK


def _print_best(console: Any, study: Any, resume: str) -> int:
    from core.sweep_storage import counted

    try:
        best = study.best_trial
    except ValueError:
        print(f"no trial completed; add trials with: {resume} --trials N", file=sys.stderr)
        return EXIT_NONE_COMPLETE
    params = ", ".join(f"{k} = {_value(v)}" for k, v in best.params.items())
    console.print(f"best: trial {best.number}, val loss {best.value:.4f}: {params}")
    console.print(f"run folder {best.user_attrs.get('run_dir', '?')}")
    console.print(f"{counted(study)} trials; more with: {resume} --trials N")
    return EXIT_OK


def trials_table(sweep: Any) -> Any:
    """The live table: trial, params, step, val loss, state (with its reason), best so far."""
    from rich.table import Table

    from core.sweep import COMPLETE, FAILED, INTERRUPTED, PRUNED

    colours = {COMPLETE: "green", PRUNED: "yellow", FAILED: "red", INTERRUPTED: "magenta"}
    table = Table(title=f"study {sweep.study_name}", expand=False)
    for column, justify in (("trial", "right"), ("params", "left"), ("step", "right"),
                            ("val loss", "right"), ("state", "left"),
                            ("best so far", "right")):
        table.add_column(column, justify=justify)
    best = None
    for view in sweep.table():
        if view.state == COMPLETE and view.best is not None:
            best = view.best if best is None else min(best, view.best)
        params = " ".join(f"{k.rpartition('.')[2]}={_value(v)}" for k, v in view.params.items())
        state = view.state + (f": {view.reason}" if view.reason else "")
        colour = colours.get(view.state)
        table.add_row(str(view.number), params, str(view.step),
                      "" if view.val_loss is None else f"{view.val_loss:.4f}",
                      f"[{colour}]{_escape(state)}[/]" if colour else _escape(state),
                      "" if best is None else f"{best:.4f}")
    return table


def _value(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(one_line(text))


def cmd_sweeps(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from core.sweep_storage import list_sweeps, study_summary

    found = [s for s in list_sweeps(args.runs_dir)
             if args.session is None or s.session == args.session]
    if not found:
        print(f"no sweeps under {args.runs_dir}", file=sys.stderr)
        return EXIT_OK
    table = Table()
    # (the study's name in full: it is what --resume takes; the storage path folds instead)
    table.add_column("study", no_wrap=True, min_width=max(len(s.study) for s in found))
    for column in ("session", "trials", "best val loss"):
        table.add_column(column, no_wrap=True)
    table.add_column("storage", overflow="fold")  # (the study's name is its start time)
    for info in found:
        try:
            done, best = study_summary(info)
            trials, best_text = f"{done}/{info.trials}", "" if best is None else f"{best:.4f}"
        except LlmlabError as e:
            trials, best_text = "?", one_line(str(e))[:60]
        storage = info.storage if "://" in info.storage else os.path.relpath(info.storage)
        table.add_row(one_line(info.study), one_line(info.session), trials, best_text,
                      one_line(storage))
    Console().print(table)
    return EXIT_OK
