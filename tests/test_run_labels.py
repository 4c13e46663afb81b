"""Run names and notes (kept in run.json, torch-free, surviving a running writer) and the
hyperparameter diff between runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import llmlab

from core.errors import LlmlabError
from core.run_writer import RunWriter
from core.runs import (
    hparam_diff,
    list_runs,
    read_run_info,
    set_run_label,
    summarize_run,
)
from core.session import Session


def make_run(root: Path, name: str, **fields) -> Path:
    run_dir = root / "s" / name
    run_dir.mkdir(parents=True)
    session = Session(name="s")
    for path, value in fields.items():
        section, leaf = path.split("__")
        setattr(getattr(session, section), leaf, value)
    writer = RunWriter(run_dir)
    writer.write_session(session)
    writer.update_info(session="s", arch=session.model.arch, status="finished")
    return run_dir


def test_name_and_notes_are_kept_in_run_json_and_summarised(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "20250101-120000")
    info = set_run_label(run_dir, name="  lr   sweep  low ", notes="baseline\nfor the talk ")
    assert info["name"] == "lr sweep low" and info["notes"] == "baseline\nfor the talk"
    on_disk = json.loads((run_dir / "run.json").read_text())
    assert on_disk["name"] == "lr sweep low" and on_disk["status"] == "finished"
    summary = summarize_run(run_dir)
    assert (summary.name, summary.notes) == ("lr sweep low", "baseline\nfor the talk")
    assert list_runs(tmp_path)[0].name == "lr sweep low"

    set_run_label(run_dir, notes="")  # notes cleared, the name kept
    assert read_run_info(run_dir).get("notes") is None
    assert read_run_info(run_dir)["name"] == "lr sweep low"
    assert not list(run_dir.glob("*.tmp*"))  # written atomically: no temp file left


def test_a_running_writer_keeps_a_name_given_meanwhile(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "20250101-120000")
    writer = RunWriter(run_dir)
    writer.update_info(step=10)
    set_run_label(run_dir, name="mine", notes="n")  # from the app, while the run trains
    writer.update_info(step=20, status="finished")
    info = read_run_info(run_dir)
    assert (info["name"], info["notes"], info["step"]) == ("mine", "n", 20)
    set_run_label(run_dir, notes="")  # cleared meanwhile: it stays cleared
    writer.update_info(step=30)
    assert "notes" not in read_run_info(run_dir) and read_run_info(run_dir)["name"] == "mine"


def test_naming_something_that_is_not_a_run_says_so(tmp_path: Path) -> None:
    with pytest.raises(LlmlabError, match="not a run folder"):
        set_run_label(tmp_path, name="x")


def test_hparam_diff_lists_only_the_fields_that_differ(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a", optim__lr=1e-3, model__n_embd=64)
    b = make_run(tmp_path, "b", optim__lr=3e-3, model__n_embd=64)
    c = make_run(tmp_path, "c", optim__lr=1e-3, model__n_embd=128, data__split=[0.8, 0.2, 0.0])
    diff = dict(hparam_diff([a, b, c]))
    assert diff == {"data.split": [[0.9, 0.1, 0.0], [0.9, 0.1, 0.0], [0.8, 0.2, 0.0]],
                    "model.n_embd": [64, 64, 128], "optim.lr": [1e-3, 3e-3, 1e-3]}
    assert list(diff) == ["data.split", "model.n_embd", "optim.lr"]  # the session's order
    assert hparam_diff([a, a]) == []
    # A field one frozen file leaves out is its default, not a difference.
    (b / "session.toml").write_text('name = "s"\n[optim]\nlr = 1e-3\n[model]\nn_embd = 64\n')
    assert hparam_diff([a, b]) == []


def test_runs_and_names_need_no_torch(tmp_path: Path) -> None:
    code = ("import sys; from core.runs import set_run_label, hparam_diff, list_runs; "
            "assert 'torch' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_llmlab_runs_shows_a_runs_name_and_notes(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "runs", "20250101-120000")
    set_run_label(run_dir, name="[b]w[/]", notes="x\x1b[2J\nsecond")
    result = llmlab(tmp_path, "runs", columns=120, cache=False, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    (i,) = [n for n, line in enumerate(lines) if "s/20250101-120000" in line]
    assert "[b]w[/] - x␛[2J" in lines[i + 1]  # as typed, no escapes
    assert "second" not in result.stdout and "\x1b" not in result.stdout
