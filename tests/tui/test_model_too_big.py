"""The Model pane refuses a model that cannot fit in memory for training: the summary says
how much it needs and what is available, and training does not start (issue 16, item 2)."""

from __future__ import annotations

import asyncio

from helpers.tui import notifications, small_session, wait_for, wait_for_screen

from tui.app import LlmlabApp


def test_a_model_too_big_for_memory_is_refused_in_the_model_pane(tmp_path, monkeypatch) -> None:
    from core import estimate

    monkeypatch.setattr(estimate, "host_memory_available", lambda: 1 << 30)  # 1 GB free
    session = small_session(tmp_path)
    session.train.device = "cpu"
    session.model.n_layer, session.model.n_embd, session.model.n_head = 48, 1024, 8

    async def scenario() -> None:
        app = LlmlabApp(session, None)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("m")
            await wait_for_screen(pilot, "GB, 1 GB free")  # ✗ needs ~9.8 GB, 1 GB free
            assert any(line.startswith("model: needs ~") for line in app.problem_lines)
            app.action_start_training()
            await wait_for(pilot, lambda: any("cannot start training" in n
                                              for n in notifications(app)), 10, "the refusal")
            assert not app.training.busy

    asyncio.run(scenario())


def test_a_small_model_passes(tmp_path, monkeypatch) -> None:
    from core import estimate

    monkeypatch.setattr(estimate, "host_memory_available", lambda: 1 << 30)
    session = small_session(tmp_path)
    session.train.device = "cpu"

    async def scenario() -> None:
        app = LlmlabApp(session, None)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("m")
            await wait_for_screen(pilot, "✓ valid")
            assert not app.problem_lines

    asyncio.run(scenario())
