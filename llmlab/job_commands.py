"""`llmlab ctl` and `llmlab attach`: steer and watch a training job through its run folder."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from core.errors import LlmlabError
from core.text import one_line

EXIT_OK, EXIT_NO_ANSWER, EXIT_BAD_INPUT = 0, 1, 2
LIVE_STATUSES = ("running", "paused")


def add_parsers(sub) -> None:
    ctl = sub.add_parser(
        "ctl", help="steer a running training job: pause, resume, stop (with a checkpoint), "
                    "checkpoint now, or set a live hyperparameter",
        description="Send a request through the run folder to the job training it, and wait "
                    "for its answer (applied at the next step, or refused with the reason).")
    ctl.add_argument("run", metavar="RUN", help="a run folder, SESSION/RUN-ID, SESSION or latest")
    ctl.add_argument("op", choices=("pause", "resume", "stop", "checkpoint", "set"))
    ctl.add_argument("assignment", nargs="?", metavar="NAME=VALUE",
                     help="for set: optim.lr, optim.weight_decay, optim.grad_clip or "
                          "train.eval_interval, e.g. optim.lr=3e-4")
    ctl.add_argument("--runs-dir", default="runs", type=Path,
                     help="where runs live (default: ./runs)")
    ctl.add_argument("--wait", type=float, default=30.0, metavar="SECONDS",
                     help="how long to wait for the job's answer (0: do not wait)")
    attach = sub.add_parser("attach", help="open the app on a run: its curves, live while "
                                           "its job trains, with every control")
    attach.add_argument("run", metavar="RUN", help="a run folder, SESSION/RUN-ID, SESSION or "
                                                   "latest")
    attach.add_argument("--runs-dir", default="runs", type=Path,
                        help="where runs live (default: ./runs)")


def cmd_ctl(args: argparse.Namespace) -> int:
    from core.control import make_request, send_control
    from core.follow import MetricsTail
    from core.runs import METRICS_FILE, find_run, run_status

    run_dir = find_run(args.run, args.runs_dir)
    request = make_request(args.op, *_assignment(args.op, args.assignment))
    status = run_status(run_dir)
    if status not in LIVE_STATUSES:
        resumable = status.startswith("stopped") or status == "lost"
        hint = (f" (resume it with: llmlab train {run_dir / 'session.toml'} --resume "
                f"{run_dir})" if resumable else "")
        raise LlmlabError(f"{run_dir}: {status}, no job is training it{hint}")
    tail = MetricsTail(run_dir / METRICS_FILE)
    tail.skip_to_end()  # (the answer comes after what is there)
    sent = send_control(run_dir, request)
    if args.wait <= 0:
        print(f"sent {request.describe()} to {run_dir}")
        return EXIT_OK
    answer, ended = _wait_for_answer(tail, request.id, args.wait, run_dir)
    if ended:  # (a request no job will take: withdrawn, not left for the next one)
        sent.unlink(missing_ok=True)
        print(f"{request.describe()}: not taken, the job ended first ({ended})",
              file=sys.stderr)
        return EXIT_NO_ANSWER
    if answer is None:
        print(f"{request.describe()}: sent, no answer within {args.wait:g} s (the job takes "
              "requests between steps; it stays in the run folder until then)",
              file=sys.stderr)
        return EXIT_NO_ANSWER
    if not answer.get("ok"):
        raise LlmlabError(f"{request.describe()}: refused: {one_line(str(answer.get('reason')))}")
    print(f"{request.describe()}: applied at step {answer.get('step')}")
    return EXIT_OK


def _assignment(op: str, text: str | None) -> tuple[str, float | None]:
    if op != "set":
        if text is not None:
            raise LlmlabError(f"{op}: takes no value (got {text})")
        return "", None
    name, eq, value = (text or "").partition("=")
    if not eq or not name.strip():
        raise LlmlabError("set: give NAME=VALUE, e.g. optim.lr=3e-4")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise LlmlabError(f"{name.strip()}: not a number ({one_line(value)})") from None


def _wait_for_answer(tail, request_id: str, seconds: float,
                     run_dir: Path) -> tuple[dict | None, str]:
    """(the job's answer, or None after `seconds`; the run's status if its job ended
    without answering: finished, stopped, failed or lost meanwhile)."""
    from core.runs import run_status

    deadline = time.monotonic() + seconds
    next_look = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        if (answer := _answer(tail, request_id)) is not None:
            return answer, ""
        if time.monotonic() >= next_look:  # (a stat or two, twice a second)
            next_look += 0.5
            status = run_status(run_dir)
            if status not in LIVE_STATUSES:  # (it may have answered, then ended: stop)
                answer = _answer(tail, request_id)
                return answer, "" if answer is not None else status
        time.sleep(0.05)
    return None, ""


def _answer(tail, request_id: str) -> dict | None:
    """The answer to `request_id` among the records added since the last look."""
    import json

    for line in tail.read_lines()[0]:
        if b'"control"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("id") == request_id:
            return record
    return None


def cmd_attach(args: argparse.Namespace) -> int:
    """The app on the run's own session (as the run was started; saving it asks where, the
    run's frozen copy is never written over), the Train pane following the run."""
    from core.runs import find_run, restart_session

    run_dir = find_run(args.run, args.runs_dir).absolute()
    session = restart_session(run_dir)
    from tui.app import LlmlabApp

    LlmlabApp(session, None, attach=run_dir).run()
    return EXIT_OK
