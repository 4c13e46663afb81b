"""One bad run folder never takes down the listing of the others: it is listed as
"damaged: <cause>" (issue 16, item 1), by `list_runs` and `llmlab runs` (the Runs pane:
tests/tui/test_damaged_runs_pane.py)."""

from __future__ import annotations

import os
from pathlib import Path

from helpers.cli import llmlab

from core.run_writer import RunWriter
from core.runs import find_run, list_runs

GOOD = "20250101-120000"


def good_run(root: Path) -> Path:
    run_dir = root / "s" / GOOD
    run_dir.mkdir(parents=True)
    writer = RunWriter(run_dir)
    writer.log({"type": "train", "step": 1, "loss": 2.0, "tokens_per_s": 100.0})
    writer.update_info(session="s", arch="gpt", params=100, max_steps=1, step=1,
                       created="2025-01-01T12:00:00", status="finished")
    writer.close()
    return run_dir


def bad_runs(root: Path) -> dict[str, str]:
    """Damaged run folders beside a good one: {run id: the cause the listing gives}."""
    made = {}
    for run_id, cause, make in (
        ("20990101-000001", "run.json: not a regular file", lambda p: p.symlink_to("/dev/zero")),
        ("20990101-000002", "run.json: not a regular file", os.mkfifo),
        ("20990101-000003", "run.json: not JSON", lambda p: p.write_text("{not json")),
        ("20990101-000004", "run.json: not a JSON object", lambda p: p.write_text("[1, 2]")),
        ("20990101-000005", "run.json: not a regular file", os.mkdir),
    ):
        run_dir = root / "s" / run_id
        run_dir.mkdir(parents=True)
        make(run_dir / "run.json")
        made[run_id] = cause
    metrics_bad = root / "s" / "20990101-000006"
    metrics_bad.mkdir()
    (metrics_bad / "run.json").write_text('{"status": "finished"}')
    (metrics_bad / "metrics.jsonl").symlink_to("/dev/zero")
    made[metrics_bad.name] = "metrics.jsonl: not a regular file"
    return made


def test_list_runs_shows_each_damaged_run_with_its_cause_beside_the_good_one(tmp_path):
    good_run(tmp_path)
    causes = bad_runs(tmp_path)
    runs = {r.run_id: r for r in list_runs(tmp_path)}
    assert runs[GOOD].status == "finished"
    assert set(runs) == {GOOD, *causes}
    for run_id, cause in causes.items():
        assert runs[run_id].status.startswith(f"damaged: {cause}"), runs[run_id].status


def test_llmlab_runs_lists_the_good_run_and_the_damaged_ones(tmp_path):
    good_run(tmp_path / "runs")
    causes = bad_runs(tmp_path / "runs")
    result = llmlab(tmp_path, "runs", "--runs-dir", "runs", columns=200, cache=False,
                    timeout=60)
    assert result.returncode == 0, result.stderr
    assert GOOD in result.stdout and "finished" in result.stdout
    for run_id in causes:
        assert run_id in result.stdout
    assert result.stdout.count("damaged") >= len(causes)


def test_a_damaged_run_is_never_the_latest_or_the_sessions_newest(tmp_path):
    good = good_run(tmp_path)
    bad_runs(tmp_path)  # all newer than the good run
    assert find_run("latest", tmp_path) == good
    assert find_run("s", tmp_path) == good
