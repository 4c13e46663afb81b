"""`llmlab` subcommands.

Exit codes: 0 ok, 2 bad input (one line on stderr, never a traceback), 1 internal error.
Heavy modules (numpy, torch, rich) are imported inside the commands that need them, so
`llmlab --help` answers at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import LlmlabError, SessionError
from core.text import one_line

if TYPE_CHECKING:
    from core.session import Session

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmlab",
        usage="llmlab [SESSION.toml]\n       llmlab COMMAND [options]",
        description="A keyboard-driven terminal lab for language-model experiments.\n\n"
                    "llmlab [SESSION.toml] opens the full-screen app on that session (the "
                    "shipped default\nsession without one); a COMMAND works headless. "
                    "'llmlab COMMAND --help' for its options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", prog="llmlab")

    def session_command(name: str, help_text: str, optional: bool = False):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("session", nargs="?" if optional else None, metavar="SESSION.toml",
                       help="session file" + (" (default: the shipped session)" if optional
                                              else ""))
        p.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE", help="override a field, e.g. model.n_layer=6")
        return p

    session_command("check", "validate a session file and list every problem")
    data = session_command("data", "tokenize the session's corpus and show its statistics",
                           optional=True)
    data.add_argument("--preview", type=int, default=400, metavar="CHARS",
                      help="characters of token-coloured preview (0 = none)")
    init = sub.add_parser("init", help="write a new, documented session file")
    init.add_argument("path", metavar="SESSION.toml")
    init.add_argument("--name", help="session name (default: the file name)")
    sub.add_parser("samples", help="list the shipped sample corpora")

    train = session_command("train", "train a model headless, with a progress bar")
    train.add_argument("--resume", metavar="RUN",
                       help="continue a run: its folder, SESSION/RUN-ID, SESSION or latest")
    train.add_argument("--detach", action="store_true",
                       help="train as a background job that outlives this terminal (its output "
                            "goes to train.log in the run folder); prints the run folder")
    train.add_argument("--nproc", type=int, default=0, metavar="N",
                       help="processes on this machine (torchrun, DDP; default: train.nproc); "
                            "also when resuming, with the same or another number")
    train.add_argument("--max-restarts", type=int, default=0, metavar="K",
                       help="with several processes: restart them up to K times when one "
                            "dies (torchrun's elastic restart); they continue the run from "
                            "its latest checkpoint")
    train.add_argument("--nnodes", type=int, default=1, metavar="M",
                       help="machines of the job: run the same command on each, with "
                            "--rdzv-endpoint (torchrun's c10d rendezvous)")
    train.add_argument("--rdzv-endpoint", metavar="HOST:PORT",
                       help="with --nnodes: the first machine's address and a free port, "
                            "reachable from the others (waits LLMLAB_DIST_TIMEOUT s for them)")
    train.add_argument("--run-dir", type=Path, metavar="DIR",
                       help="the new run's folder (made by a launcher: the app, a sweep); "
                            "default: a new folder under train.runs_dir")

    def run_command(name: str, help_text: str, model: bool = False):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("run", metavar="RUN|MODEL" if model else "RUN",
                       help="a run folder, SESSION/RUN-ID, SESSION (its newest run) or latest"
                            + (", or a saved compressed-model folder" if model else ""))
        p.add_argument("--runs-dir", default="runs", type=Path,
                       help="where runs live (default: ./runs)")
        return p

    ev = run_command("eval", "evaluate a run's best checkpoint or a compressed model: loss, "
                             "perplexity, bits per character, top-1/top-5, macro-F1", model=True)
    ev.add_argument("--split", choices=("val", "test", "train"), default="val")
    ev.add_argument("--iters", type=int, default=None, metavar="N",
                    help="sample N random batches instead (default: the whole split)")
    sample = run_command("sample", "generate text from a run's best checkpoint or a "
                                   "compressed model, streamed", model=True)
    sample.add_argument("--prompt", default=None, help="text to continue")
    sample.add_argument("--tokens", type=int, default=None, help="tokens to generate")
    sample.add_argument("--temperature", type=float, default=None)
    sample.add_argument("--top-k", type=int, default=None)
    sample.add_argument("--top-p", type=float, default=None)
    sample.add_argument("--seed", type=int, default=None)
    sample.add_argument("--no-cache", action="store_true",
                        help="rerun the whole context for every token (no KV cache/state)")
    from llmlab.compress_commands import add_parsers as add_compress_parsers

    add_compress_parsers(sub)
    from llmlab.export_commands import add_parser as add_export_parser

    add_export_parser(sub)
    runs = sub.add_parser("runs", help="list the runs (newest first): their full ids, model, "
                                       "steps, best val loss, tokens/s and status")
    runs.add_argument("session", nargs="?", help="only this session's runs")
    runs.add_argument("--runs-dir", default="runs", type=Path,
                      help="where runs live (default: ./runs)")
    runs.add_argument("--csv", type=Path, metavar="FILE",
                      help="also write every metrics record of the listed runs to FILE")
    from llmlab.job_commands import add_parsers as add_job_parsers

    add_job_parsers(sub)
    from llmlab.serve_command import add_parser as add_serve_parser

    add_serve_parser(sub)
    from llmlab.sweep_commands import add_parsers as add_sweep_parsers

    add_sweep_parsers(sub)
    for choice in sub._choices_actions:  # a command's own --help says what it does
        command = sub.choices[choice.dest]
        if command.description is None:
            command.description = choice.help
    return parser


def _app_session(argv: list[str]) -> tuple[bool, str | None]:
    """Whether `argv` asks for the full-screen app: no arguments, or just a session path (a
    first word that is neither a subcommand nor an option); and that path, if any."""
    if not argv:
        return True, None
    if len(argv) == 1 and not argv[0].startswith("-") and argv[0] not in _subcommands():
        return True, argv[0]
    return False, None


def _subcommands() -> set[str]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    wants_app, session_path = _app_session(argv)
    if wants_app:
        return run_app(session_path)
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except LlmlabError as e:
        _print_problems(e)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: one line, the traceback only on request
        print(f"llmlab: internal error: {type(e).__name__}: {one_line(str(e))}", file=sys.stderr)
        if os.environ.get("LLMLAB_DEBUG"):
            traceback.print_exc()
        else:
            print("llmlab: set LLMLAB_DEBUG=1 to see the traceback", file=sys.stderr)
        return EXIT_INTERNAL


def run_app(session_path: str | None = None) -> int:
    """`llmlab [SESSION.toml]`: the app, full screen; 2 with the problems for a bad file."""
    from core.session import load_session

    session = None
    path = Path(session_path) if session_path is not None else None
    if path is not None:
        try:
            session = load_session(path)
        except LlmlabError as e:
            _print_problems(e)
            return EXIT_BAD_INPUT
    from tui.app import LlmlabApp

    LlmlabApp(session, path).run()
    return 0


def _print_problems(error: LlmlabError) -> None:
    """Each problem on its line, control characters made visible (a problem quotes names and
    text from files someone else may have written)."""
    lines = error.problems if isinstance(error, SessionError) else [str(error)]
    for line in lines:
        print(one_line(line), file=sys.stderr)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "check":
        return cmd_check(args)
    if args.command == "data":
        return cmd_data(args)
    if args.command == "init":
        return cmd_init(args)
    if args.command == "samples":
        return cmd_samples()
    if args.command == "train" and args.detach:  # (a launcher: no torch, back at once)
        return _compute(args)
    if args.command in ("train", "eval", "sample", "prune", "quantize"):
        from llmlab.ranks import quiet_rendezvous_logs

        with quiet_rendezvous_logs(args):
            from core.device import denormals_flushed

        # From before torch's thread pool exists (its threads inherit the setting) to the
        # end of the command; restored after, for a script that calls main() in-process.
        with denormals_flushed():
            return _compute(args)
    if args.command in ("runs", "export"):
        return _compute(args)
    if args.command in ("sweep", "sweeps"):
        from llmlab import sweep_commands

        return getattr(sweep_commands, f"cmd_{args.command}")(args)
    if args.command in ("ctl", "attach"):
        from llmlab import job_commands

        return getattr(job_commands, f"cmd_{args.command}")(args)
    if args.command == "serve":
        from llmlab.serve_command import cmd_serve

        return cmd_serve(args)
    build_parser().print_help()
    return EXIT_OK


def _compute(args: argparse.Namespace) -> int:
    if args.command in ("prune", "quantize"):
        from llmlab import compress_commands

        return getattr(compress_commands, f"cmd_{args.command}")(args)
    if args.command == "export":
        from llmlab.export_commands import cmd_export

        return cmd_export(args)
    from llmlab import run_commands

    return getattr(run_commands, f"cmd_{args.command}")(args, _load)


def _load(args: argparse.Namespace):
    from core.samples import load_default_session
    from core.session import load_session

    if args.session is None:
        return load_default_session(args.overrides)
    return load_session(args.session, args.overrides)


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the session, then what `train` needs before it starts, cheaply: a corpus
    that is there and readable, a runs folder it can write."""
    from core.corpus import check_corpus
    from core.estimate import check_session_fits
    from core.runs import check_runs_root
    from core.sweep_storage import check_storage

    session = _load(args)
    problems = []

    most_tokens: list[int] = []  # the corpus's tokens, at most (once it is found readable)
    for path, check in (("data.corpus", lambda: most_tokens.append(check_corpus(
                            session.data.corpus, session.base_dir))),
                        ("", lambda: _check_split_sizes(session, most_tokens)),
                        ("", lambda: check_session_fits(session)),
                        ("train.runs_dir", lambda: check_runs_root(
                            session.resolve(session.train.runs_dir))),
                        ("", lambda: check_storage(session))):
        try:
            check()
        except LlmlabError as e:
            problems.append(f"{path}: {e}" if path else str(e))
    if problems:
        raise SessionError(problems)
    print(f"{args.session}: OK")
    return EXIT_OK


def _check_split_sizes(session: Session, most_tokens: list[int]) -> None:
    """A split that cannot hold one window of context + 1 tokens even if every byte of the
    corpus were a token (train always; val when evaluating), refused before any run."""
    split, need = session.data.split, session.model.context + 1
    for name, fraction in (("train", split[0]), ("val", split[1])):
        at_most = int(sum(most_tokens) * fraction)
        if most_tokens and 0 < fraction and at_most < need and (
                name == "train" or session.train.eval_interval > 0):
            raise LlmlabError(f"data.split: the {name} split has at most {at_most} tokens, "
                              f"fewer than model.context + 1 ({need}); use a larger corpus "
                              "or fraction")
    folds = session.data.folds
    at_most = int(sum(most_tokens) * (split[0] + split[1]) / folds)
    if most_tokens and folds > 1 and at_most < need:
        raise LlmlabError(f"data.folds: each of the {folds} folds' val blocks has at most "
                          f"{at_most} tokens, fewer than model.context + 1 ({need}); use "
                          "fewer folds or a larger corpus")


def cmd_init(args: argparse.Namespace) -> int:
    from core.session import Session, save_session

    path = Path(args.path)
    if path.exists():
        raise LlmlabError(f"{path}: already exists; not overwritten")
    session = Session(name=args.name or path.stem)
    save_session(session, path)
    print(f"wrote {path}")
    return EXIT_OK


def cmd_samples() -> int:
    from core.samples import SAMPLES

    for name, description in SAMPLES.items():
        print(f"sample:{name:<16} {description}")
    return EXIT_OK


def cmd_data(args: argparse.Namespace) -> int:
    from rich.console import Console

    from core.dataset import load_dataset
    from llmlab.render import render_preview, render_stats

    session = _load(args)
    console = Console()
    with console.status(f"opening {session.data.corpus} ..."):
        ds = load_dataset(session.data, session.base_dir)
    render_stats(console, ds)
    if args.preview > 0:
        render_preview(console, ds, args.preview)
    return EXIT_OK
