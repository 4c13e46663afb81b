"""A training that collapses is flagged in the Train pane's log (issue 10, item 1), through the
real engine process: the warning is the engine's, the pane only shows it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from helpers.tui import small_session, wait_for

from tui.app import LlmlabApp


def test_a_collapsing_run_says_so_in_the_train_log(tmp_path: Path) -> None:
    # As tests/test_collapse.py: plain SGD with lr*wd = 0.5 a step halves every decayed weight
    # of a bias-free, untied LSTM each step: uniform predictions, gradients ~1e-9 by step 30.
    session = small_session(tmp_path, max_steps=40, eval_interval=10, log_interval=5)
    m, o = session.model, session.optim
    m.arch, m.n_layer, m.n_embd, m.n_hidden, m.bias = "lstm", 1, 32, 48, False
    o.name, o.lr, o.momentum, o.weight_decay, o.schedule = "sgd", 1e-2, 0.0, 50.0, "constant"

    async def scenario() -> None:
        app = LlmlabApp(session, None)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("s")
            pane = app.train_pane
            line = await wait_for(
                pilot, lambda: [t for t in pane.event_log.texts if "collapsed" in t], 120,
                "the collapse warning in the Train log")
            assert "ln(vocab 17)" in line[0]
            await wait_for(pilot, lambda: app.training.state == "finished", 60, "the run's end")

    asyncio.run(scenario())
