"""Helpers for the app's tests: small sessions, waiting with a deadline (never a fixed
sleep), reading the screen as text, typing into the app, and a scripted engine."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from core import messages as msg
from core.session import Session
from helpers.sessions import small_session


def sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test (with its fixtures) to its end."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


@contextlib.asynccontextmanager
async def app_at(folder: Path, size: tuple[int, int] = (80, 24),
                 **kwargs: Any) -> AsyncIterator[tuple[Any, Any]]:
    """The app on the small session of `folder` (no session file; `kwargs` to LlmlabApp, an
    engine_factory...), run for a test at `size`: (app, pilot)."""
    from tui.app import LlmlabApp

    app = LlmlabApp(small_session(folder), None, **kwargs)
    async with app.run_test(size=size) as pilot:
        yield app, pilot


async def wait_for(pilot, condition: Callable[[], Any], timeout: float = 30.0,
                   what: str = "condition") -> Any:
    """Let the app run until `condition()` is truthy (polling), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await pilot.pause(0.05)


def screen_text(app) -> str:
    """The screen as plain text, for asserting what a user would read."""
    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False)
    console.print(app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens))
    return console.export_text()


def notifications(app) -> list[str]:
    """The messages of the notifications the app is showing. Textual 8 keeps them in
    `App._notifications` and has no public list of them (a Toast shows only while on screen);
    this is the one place the tests read it."""
    return [n.message for n in app._notifications]


def shows(app, text: str) -> bool:
    """Whether the drawn screen shows `text`, wherever the terminal wrapped it: a long path
    folds over lines (mid-word too), so both sides are compared without whitespace."""
    return "".join(text.split()) in "".join(screen_text(app).split())


async def wait_for_screen(pilot, text: str, timeout: float = 10.0) -> None:
    """Wait until the screen shows `text` (a widget updated now is drawn on a later frame)."""
    await wait_for(pilot, lambda: shows(pilot.app, text), timeout, f"{text!r} on the screen")


async def settle(pilot) -> None:
    """Let a pane being mounted (the Model form, at its first show) finish before a test
    ends: a Select still mounting while the app shuts down fails in Textual."""
    panes = pilot.app.panes()
    await wait_for(pilot, lambda: all(p.settled.is_set() for p in panes), 20, "the panes")
    await pilot.pause()


async def paste(pilot, text: str) -> None:
    """Paste `text` into the focused widget, as a terminal's bracketed paste delivers it
    (much faster than a key press per character)."""
    from textual import events

    pilot.app.focused.post_message(events.Paste(text))
    await pilot.pause()


async def type_text(pilot, text: str) -> None:
    await pilot.press(*[{" ": "space", ".": "full_stop", "/": "slash", "-": "minus",
                         "_": "underscore", ":": "colon"}.get(c, c) for c in text])


async def jump_to_field(pilot, path: str) -> None:
    """Focus a form field the way a user does: ctrl+p, type its name, enter."""
    await pilot.press("ctrl+p")
    await paste(pilot, f"Field: {path}")
    await wait_for(pilot, lambda: _palette_has(pilot.app, f"Field: {path}"), 10,
                   f"the palette to list {path}")
    await pilot.press("enter")
    await wait_for(pilot, lambda: _focused_field(pilot.app) == path, 10, f"focus on {path}")


def _palette_has(app, title: str) -> bool:
    from textual.command import CommandList

    try:
        options = app.screen.query_one(CommandList)
    except Exception:
        return False
    return options.option_count > 0 and title in str(options.get_option_at_index(0).prompt)


def _focused_field(app) -> str | None:
    from tui.widgets.field_row import FieldRow

    node = app.focused
    while node is not None and not isinstance(node, FieldRow):
        node = node.parent
    return node.path if node is not None else None


async def set_field(pilot, path: str, value: str) -> None:
    """Jump to a field, replace its text by typing, and commit with enter."""
    await jump_to_field(pilot, path)
    await pilot.press("ctrl+a", "ctrl+k")
    await type_text(pilot, value)
    await pilot.press("enter")


class FakeEngine:
    """Stands in for core.worker.EngineProcess: plays scripted events, records commands."""

    def __init__(self, session: Session, script: Callable[[msg.Command], list[msg.Event]]):
        self.session = session
        self.script = script
        self.sent: list[msg.Command] = []
        self.pending: list[msg.Event] = [msg.Status("idle")]
        self._alive = False
        self.process = SimpleNamespace(pid=None)

    def start(self) -> FakeEngine:
        self._alive = True
        return self

    def send(self, command: msg.Command) -> None:
        self.sent.append(command)
        self.pending += self.script(command)

    def poll(self, timeout: float = 0.0, limit: int = 1000) -> list[msg.Event]:
        out, self.pending = self.pending[:limit], self.pending[limit:]
        return out

    @property
    def alive(self) -> bool:
        return self._alive

    def close(self, timeout: float = 30.0) -> list[msg.Event]:
        self._alive = False
        return self.poll()


def fake_run(n_steps: int = 60, max_steps: int = 200) -> list[msg.Event]:
    """A deterministic run: a falling loss, evals every 20 steps, an lr change at 30."""
    events: list[msg.Event] = [
        msg.Status("preparing"),
        msg.RunStarted(run_dir="runs/tiny/run-1", arch="gpt", params=13952,
                       flops_per_token=29760, vocab_size=17, max_steps=max_steps,
                       start_step=0, device="cpu", precision="fp32"),
        msg.Status("running"),
    ]
    lr = 1e-3
    for step in range(1, n_steps + 1):
        if step == 30:
            events.append(msg.HparamChanged(step=30, name="optim.lr", old=lr, new=2 * lr))
            lr *= 2
        loss = 1.1 + 1.7 * 0.96**step + 0.05 * ((step * 7919) % 11) / 11
        events.append(msg.StepMetrics(step=step, tokens=256 * step, loss=loss, lr=lr,
                                      grad_norm=1.0, tokens_per_s=25600.0, mfu=0.0125,
                                      elapsed=step * 0.01, max_steps=max_steps))
        if step % 20 == 0:
            events.append(msg.EvalMetrics(step=step, split="val", loss=loss + 0.05,
                                          perplexity=2.718 ** (loss + 0.05),
                                          top1=0.4 + step / 300, top5=0.9))
    return events


class ThreadEngine:
    """The real engine (core.engine.Engine) serving in a thread of the test process: the
    workbench panes tested against real models, without paying a process spawn per test."""

    def __init__(self, session: Session):
        import queue
        import threading

        from core.engine import Engine

        self.session = session
        self.sent: list[msg.Command] = []
        self.commands: queue.Queue = queue.Queue()
        self.events: queue.Queue = queue.Queue()
        self.engine = Engine(session, self.events.put, self.commands)
        self.thread = threading.Thread(target=self.engine.serve, name="test-engine",
                                       daemon=True)
        self.process = SimpleNamespace(pid=None)

    def start(self) -> ThreadEngine:
        self.thread.start()
        return self

    def send(self, command: msg.Command) -> None:
        self.sent.append(command)
        self.commands.put(command)

    def poll(self, timeout: float = 0.0, limit: int = 1000) -> list[msg.Event]:
        import queue

        out: list[msg.Event] = []
        try:
            while len(out) < limit:
                out.append(self.events.get_nowait())
        except queue.Empty:
            pass
        return out

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def close(self, timeout: float = 30.0) -> list[msg.Event]:
        if self.thread.is_alive():
            self.commands.put(msg.Shutdown())
            self.thread.join(timeout)
        return self.poll()


def train_tiny_run(base_dir: Path, arch: str = "gpt", steps: int = 60, **data: Any) -> Path:
    """Train a tiny model in-process (seconds); its run folder."""
    from core.engine import Engine

    s = small_session(base_dir, max_steps=steps, eval_interval=30, checkpoint_interval=0)
    s.model.arch = arch
    for key, value in data.items():
        setattr(s.data, key, value)
    events: list[msg.Event] = []
    state = Engine(s, events.append).train()
    errors = [e.message for e in events if isinstance(e, msg.Error)]
    assert state == "finished", errors
    (started,) = [e for e in events if isinstance(e, msg.RunStarted)]
    return Path(started.run_dir)
