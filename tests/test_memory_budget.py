"""A model that cannot fit, or a split that cannot hold a window, is refused by `check` and
by `train` before a run folder exists (issue 16, item 2)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from helpers import cli
from helpers.cli import ok, one_line_exit_2

from core import estimate
from core.errors import LlmlabError
from core.session import Session

TINY = ["data.corpus=sample:synthetic", "model.n_layer=1", "model.n_embd=32", "model.n_head=2",
        "model.context=16", "train.batch_size=8", "train.max_steps=2", "optim.warmup_steps=1",
        "train.device=cpu", "train.eval_iters=2"]
HUGE = ["model.n_layer=1000", "model.n_embd=8192"]


# (an address-space cap: a regression fails fast instead of eating the machine)
llmlab = functools.partial(cli.llmlab, columns=200, cache=False, memory_cap=6 << 30)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    ok(llmlab(tmp_path, "init", "s.toml"))
    return tmp_path


def test_check_refuses_a_model_that_cannot_fit_naming_estimate_and_available(folder):
    line = one_line_exit_2(llmlab(folder, "check", "s.toml", sets=[*TINY, *HUGE]))
    assert line.startswith("model: needs ~") and "TB to train" in line
    assert "params+grads" in line and "optimizer" in line and "activations" in line
    assert "available" in line


def test_train_refuses_it_before_creating_a_run_folder(folder):
    one_line_exit_2(llmlab(folder, "train", "s.toml", sets=[*TINY, *HUGE]))
    assert not (folder / "runs").exists() or not any((folder / "runs").rglob("run.json"))


@pytest.mark.parametrize("bad", [
    ["data.split=[1, 0, 0]"],  # no val split, yet evaluation is on
    ["data.split=[0.99999, 0.00001, 0]"],  # val smaller than the context
])
def test_train_leaves_no_run_folder_for_a_split_that_cannot_hold_a_window(folder, bad):
    line = one_line_exit_2(llmlab(folder, "train", "s.toml", sets=[*TINY, *bad]))
    assert line.startswith("data.split:")
    assert not (folder / "runs").exists() or not any((folder / "runs").iterdir())


def test_check_finds_a_split_without_val_while_evaluation_is_on(folder):
    line = one_line_exit_2(llmlab(folder, "check", "s.toml", sets=[*TINY, "data.split=[1,0,0]"]))
    assert line.startswith("data.split:")
    passed = llmlab(folder, "check", "s.toml",
                    sets=[*TINY, "data.split=[1,0,0]", "train.eval_interval=0"])
    assert passed.returncode == 0, passed.stderr


def test_a_small_model_passes_check(folder):
    result = llmlab(folder, "check", "s.toml", sets=TINY)
    assert result.returncode == 0, result.stderr


def test_available_memory_is_the_lower_of_meminfo_and_the_cgroup_headroom(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 100000 kB\nMemAvailable:    8000 kB\n")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    assert estimate.host_memory_available(meminfo, cgroup) == 8000 * 1024
    (cgroup / "memory.max").write_text("max\n")
    (cgroup / "memory.current").write_text("100\n")
    assert estimate.host_memory_available(meminfo, cgroup) == 8000 * 1024
    (cgroup / "memory.max").write_text(f"{1 << 20}\n")
    assert estimate.host_memory_available(meminfo, cgroup) == (1 << 20) - 100
    assert estimate.host_memory_available(tmp_path / "none", tmp_path / "none") is None


def test_check_fits_refuses_only_beyond_what_is_available():
    s = Session()
    mem = estimate.memory_estimate(s.model, 256, s.optim, s.train)
    estimate.check_fits(mem, mem.total)
    estimate.check_fits(mem, None)  # unknown: refuse nothing
    with pytest.raises(LlmlabError, match=r"model: needs ~.* available"):
        estimate.check_fits(mem, mem.total - 1)


def test_check_finds_a_val_split_smaller_than_the_context_from_the_corpus_size(folder):
    (folder / "small.txt").write_text("a few words, not enough for a window\n" * 10)
    line = one_line_exit_2(llmlab(folder, "check", "s.toml", sets=[
        *TINY, "data.corpus=small.txt", "data.split=[0.97, 0.03, 0]"]))
    assert line.startswith("data.split: the val split has at most")
    passed = llmlab(folder, "check", "s.toml", sets=[*TINY, "data.corpus=small.txt"])
    assert passed.returncode == 0, passed.stderr


def test_an_address_space_limit_counts_as_what_is_available(folder):
    # ~13 GB (1 layer of 8192): refused under the 6 GB `ulimit -v` that `llmlab` runs with here
    line = one_line_exit_2(llmlab(folder, "check", "s.toml", sets=[
        *TINY, "model.n_layer=1", "model.n_embd=8192", "model.n_head=8"]))
    available = re.search(r"\), ([\d.]+) (GB|MB) available", line)
    assert line.startswith("model: needs ~") and available, line
    assert available[2] == "MB" or float(available[1]) <= 6, line
