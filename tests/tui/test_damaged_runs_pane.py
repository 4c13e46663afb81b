"""The Runs pane lists a run folder whose run.json cannot be read as "damaged", with its
cause on the status line, beside the good runs (issue 16, item 1)."""

from __future__ import annotations

import asyncio

from helpers.tui import small_session, wait_for, wait_for_screen
from test_runs_pane import synthetic_run

from tui.app import LlmlabApp
from tui.panes.runs import RunsPane
from tui.widgets.runs_table import RunsTable

GOOD = "20250101-120000"


def test_runs_pane_shows_a_damaged_row_and_its_cause(tmp_path):
    synthetic_run(tmp_path / "runs", "s", GOOD, "2025-01-01T12:00:00", 20, 0.9)
    bad = tmp_path / "runs" / "s" / "20990101-000001"
    bad.mkdir()
    (bad / "run.json").symlink_to("/dev/zero")

    async def scenario() -> None:
        app = LlmlabApp(small_session(tmp_path), None)
        async with app.run_test(size=(100, 24)) as pilot:
            pane = app.query_one(RunsPane)
            before = pane.scans
            await pilot.press("r")
            await wait_for(pilot, lambda: pane.scans > before, 20, "the runs folder read")
            table = app.query_one(RunsTable)
            rows = [[str(c).strip() for c in table.get_row_at(i)] for i in range(table.row_count)]
            assert [r[1] for r in rows] == ["s/20990101-000001", f"s/{GOOD}"]
            assert rows[0][-1] == "damaged" and rows[1][-1] == "finished"
            await wait_for_screen(pilot, "damaged: run.json: not a regular file")

    asyncio.run(scenario())


