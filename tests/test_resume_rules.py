"""`--resume` stays inside the runs folder and means what it says: a spec never climbs out of
the runs folder, a --set it would ignore is refused, a finished run is left as it is."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest
from helpers import cli
from helpers.cli import one_line_exit_2
from helpers.sessions import tiny_session

from core.engine import Engine
from core.errors import LlmlabError
from core.runs import find_run
from core.session import save_session

pytestmark = pytest.mark.usefixtures("one_torch_thread")


llmlab = functools.partial(cli.llmlab, columns=200, cache=False)


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under `folder`: (inode, size, mtime in ns) — what a rewrite would change."""
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with t.toml and a finished 3-step run of it under runs/t."""
    folder = tmp_path_factory.mktemp("resume")
    session = tiny_session(folder, max_steps=3)
    save_session(session, folder / "t.toml")
    assert Engine(session, lambda e: None).train() == "finished"
    return folder


@pytest.fixture
def work(finished: Path, tmp_path: Path) -> Path:
    """A copy of `finished` to work in, and a run outside its runs folder: elsewhere_run."""
    shutil.copytree(finished, tmp_path / "w")
    (run,) = (tmp_path / "w" / "runs" / "t").iterdir()
    shutil.copytree(run, tmp_path / "elsewhere_run")
    return tmp_path / "w"


def test_a_run_spec_never_climbs_out_of_the_runs_folder(work: Path, monkeypatch) -> None:
    monkeypatch.chdir(work)
    runs = work / "runs"
    for spec in ("t/../../../elsewhere_run", "t/../../..", "t/.."):
        with pytest.raises(LlmlabError, match="not a run inside"):
            find_run(spec, runs)
    elsewhere = work.parent / "elsewhere_run"
    assert find_run(str(elsewhere), runs) == elsewhere  # a path the user gave is theirs
    assert find_run("../elsewhere_run", runs) == Path("../elsewhere_run")  # (from here)
    (run,) = (runs / "t").iterdir()
    assert find_run(f"t/{run.name}", runs) == runs / "t" / run.name
    assert find_run("t", runs) == runs / "t" / run.name


def test_train_resume_out_of_the_runs_folder_is_refused_untouched(work: Path) -> None:
    elsewhere = work.parent / "elsewhere_run"
    before = snapshot(elsewhere)
    line = one_line_exit_2(llmlab(work, "train", "t.toml", "--resume",
                                  "t/../../../elsewhere_run"))
    assert "not a run inside" in line
    assert snapshot(elsewhere) == before


def test_set_with_resume_is_refused_not_ignored(work: Path) -> None:
    before = snapshot(work / "runs")
    line = one_line_exit_2(llmlab(work, "train", "t.toml", "--resume", "latest",
                                  "--set", "train.max_steps=6"))
    assert line.startswith("--set train.max_steps=6: not applied to a resumed run")
    assert snapshot(work / "runs") == before


def test_resuming_a_finished_run_leaves_it_as_it_is(work: Path) -> None:
    before = snapshot(work / "runs")
    line = one_line_exit_2(llmlab(work, "train", "t.toml", "--resume", "t"))
    assert "already finished (step 3 of 3)" in line
    assert snapshot(work / "runs") == before  # the final checkpoint was not saved again
