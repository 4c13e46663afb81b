"""Cross-validation (`data.folds`, core/folds.py): the split, `llmlab train` over k folds, the
bad values, `llmlab runs` grouping the folds, and a sweep optimising the folds' mean."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from helpers.cli import llmlab, ok, one_line_exit_2
from helpers.jobs import alive, wait_until
from helpers.sessions import small_session

from core.dataset import TokenDataset
from core.folds import fold_spans, group_runs, run_fold, summarize_folds
from core.runs import list_runs, read_metrics, read_run_info
from core.session import load_session, save_session
from core.sweep import Sweep


def token_dataset(n: int, split=(0.8, 0.1, 0.1), folds: int = 1, fold: int = 0
                  ) -> TokenDataset:
    """A dataset whose token at position p is p: a window's values are its positions."""
    tokens = np.arange(n, dtype=np.int64)
    return TokenDataset(corpus=None, tokenizer=None, tokens=tokens, counts=tokens,  # type: ignore[arg-type]
                        n_chars=n, split=split, cache_dir=Path("."), cache_hit=True,
                        folds=folds, fold=fold)


@pytest.mark.parametrize("n,k", [(1000, 3), (1001, 4), (97, 5), (10, 10)])
def test_the_val_blocks_are_disjoint_and_cover_train_plus_val(n, k) -> None:
    covered = []
    for i in range(k):
        (lo, hi), train = fold_spans(0, n, k, i)
        assert hi > lo
        covered += range(lo, hi)
        # train is everything else, in at most two contiguous parts
        assert sorted(x for a, b in train for x in range(a, b)) == \
            [x for x in range(n) if not lo <= x < hi]
    assert covered == list(range(n))  # each token in exactly one val block, in order


def test_a_folds_dataset_holds_out_its_block_and_keeps_the_test_split() -> None:
    n, k = 1000, 3
    test = token_dataset(n).bounds("test")
    vals = []
    for i in range(k):
        ds = token_dataset(n, folds=k, fold=i)
        assert ds.spans("test") == [test]  # held out from every fold
        (val,) = ds.spans("val")
        vals.append(val)
        train = ds.spans("train")
        assert ds.split_size("train") + ds.split_size("val") == test[0]
        assert val not in train and all(b <= val[0] or a >= val[1] for a, b in train)
    assert vals[0][0] == 0 and vals[-1][1] == test[0]
    assert all(a[1] == b[0] for a, b in zip(vals, vals[1:], strict=False))


def test_train_windows_of_a_middle_fold_never_straddle_the_held_out_block() -> None:
    ds = token_dataset(1000, folds=3, fold=1)
    (lo, hi), context = ds.spans("val")[0], 16
    g = torch.Generator().manual_seed(0)
    sides = set()
    for _ in range(50):
        x, y = ds.get_batch("train", 64, context, g)
        window = torch.cat([x, y[:, -1:]], dim=1)
        assert ((window[:, 1:] - window[:, :-1]) == 1).all()  # contiguous text
        inside = (window >= lo) & (window < hi)
        assert not inside.any()  # no token of the val block, so no window across it
        sides |= {int(w[0] < lo) for w in window}
    assert sides == {0, 1}  # both sides are drawn from


def test_one_fold_is_the_usual_split_and_the_same_batches() -> None:
    plain, one = token_dataset(1000), token_dataset(1000, folds=1)
    a = plain.get_batch("train", 8, 16, torch.Generator().manual_seed(3))
    b = one.get_batch("train", 8, 16, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and one.spans("train") == [plain.bounds("train")]


# --------------------------------------------------------------------------- llmlab train

def fold_session_file(folder: Path, **fields) -> Path:
    s = small_session(folder, context=16, **{"max_steps": 20, "eval_interval": 10,
                                             "folds": 3, **fields})
    s.train.runs_dir = "runs"
    save_session(s, folder / "s.toml")
    return folder / "s.toml"


def test_three_fold_cross_validation_reports_three_val_losses_mean_and_spread(
        tmp_path) -> None:
    fold_session_file(tmp_path)
    out = ok(llmlab(tmp_path, "train", "s.toml", timeout=300))
    runs = sorted(list_runs(tmp_path / "runs"), key=lambda r: r.folds[1] if r.folds else -1)
    assert [r.folds[1:] for r in runs if r.folds] == [(0, 3), (1, 3), (2, 3)]
    assert len({r.folds[0] for r in runs if r.folds}) == 1 and len(runs) == 3
    losses = [read_run_info(r.path)["best_val_loss"] for r in runs]
    for i, r in enumerate(runs):  # each fold's frozen session names its fold
        frozen = load_session(r.path / "session.toml")
        assert (frozen.data.folds, frozen.data.fold) == (3, i)
        evals = [m["val_loss"] for m in read_metrics(r.path) if m.get("type") == "eval"]
        assert min(evals) == pytest.approx(losses[i])
    assert len(set(losses)) == 3  # three different val blocks
    line = re.search(r"val loss over 3 folds: (\S+) (\S+) (\S+), mean (\S+) ± (\S+) \(std\)",
                     out)
    assert line is not None, out
    assert [float(x) for x in line.groups()[:3]] == pytest.approx(losses, abs=5e-5)
    assert float(line.group(4)) == pytest.approx(statistics.fmean(losses), abs=5e-5)
    assert float(line.group(5)) == pytest.approx(statistics.stdev(losses), abs=5e-5)
    summary = summarize_folds([r.path for r in runs])
    assert summary.losses == losses and summary.mean == pytest.approx(statistics.fmean(losses))
    # `llmlab runs`: one row for the group with the mean ± std, its folds under it
    listed = ok(llmlab(tmp_path, "runs", "--runs-dir", "runs", columns=200))
    group = runs[0].path.name
    assert f"tiny/{group} folds" in listed
    assert f"{summary.mean:.3f}±{summary.std:.3f}" in listed
    lines = listed.splitlines()
    head = next(i for i, x in enumerate(lines) if f"{group} folds" in x)
    assert all(f"  tiny/{r.path.name}" in "\n".join(lines[head + 1:]) for r in runs)


def test_detached_folds_train_as_jobs_at_once_and_group_as_the_sequential_ones(
        tmp_path, jobs) -> None:
    fold_session_file(tmp_path)
    out = ok(llmlab(tmp_path, "train", "s.toml", "--detach"))
    started = re.findall(r"fold (\d) of 3: pid (\d+), run folder (.+)", out)
    jobs.pids += [int(pid) for _, pid, _ in started]
    assert [fold for fold, _, _ in started] == ["1", "2", "3"]
    group = Path(started[0][2]).name
    assert f"3 folds training in the background (group {group})" in out
    runs = [Path(folder) for _, _, folder in started]
    wait_until(lambda: all(read_run_info(r).get("status") == "finished" for r in runs),
               timeout=300, what="the three folds")
    wait_until(lambda: not any(alive(pid) for pid in jobs.pids), timeout=60,
               what="the jobs to exit")
    assert [run_fold(read_run_info(r)) for r in runs] == [(group, i, 3) for i in range(3)]
    summary = summarize_folds(runs)
    assert len(summary.done) == 3 and summary.std is not None
    listed = ok(llmlab(tmp_path, "runs", "--runs-dir", "runs", columns=200))
    assert f"{summary.mean:.3f}±{summary.std:.3f}" in listed


@pytest.mark.parametrize("sets,expected", [
    (["data.folds=0"], "data.folds: must be >= 1 (got 0)"),
    (["data.folds=1.5"], "data.folds: must be an integer (got 1.5)"),
    (["data.folds=\"3\""], "data.folds: must be an integer (got '3')"),
    (["data.folds=3", "data.fold=3"],
     "data.fold: must be < data.folds (the folds are 0 .. 2; got 3)"),
    (["data.folds=3", "train.eval_interval=0"],
     "data.folds: cross-validation compares val losses: train.eval_interval must be > 0 "
     "(got folds = 3, eval_interval = 0)"),
])
def test_bad_folds_values_are_one_line_each(tmp_path, sets, expected) -> None:
    fold_session_file(tmp_path)
    for command in ("check", "train"):
        assert one_line_exit_2(llmlab(tmp_path, command, "s.toml", sets=sets)) == expected
    assert not (tmp_path / "runs").exists()


def test_folds_too_small_for_a_window_are_refused_before_any_run(tmp_path) -> None:
    (tmp_path / "small.txt").write_text("abcdefghij" * 30)  # 300 tokens
    fold_session_file(tmp_path, corpus="small.txt", split=[0.9, 0.1, 0.0])
    line = one_line_exit_2(llmlab(tmp_path, "train", "s.toml", sets=["data.folds=30"]))
    assert line == ("data.folds: fold 0's val block has 10 tokens, fewer than model.context "
                    "+ 1 (17); use fewer folds or a larger corpus")
    assert one_line_exit_2(llmlab(tmp_path, "check", "s.toml", sets=["data.folds=30"])) \
        .startswith("data.folds: each of the 30 folds' val blocks has at most")
    assert list_runs(tmp_path / "runs") == []


def test_group_runs_keeps_a_damaged_folds_entry_as_a_plain_run() -> None:
    assert run_fold({"folds": {"group": "g", "fold": 3, "of": 3}}) is None
    assert run_fold({"folds": "x"}) is None
    assert run_fold({"folds": {"group": "g", "fold": 1, "of": 3}}) == ("g", 1, 3)
    assert group_runs([]) == []


# --------------------------------------------------------------------------- a sweep

def test_a_sweep_with_two_folds_optimises_the_mean_of_its_folds(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LLMLAB_HEARTBEAT_S", "0.2")
    s = small_session(tmp_path, context=16, max_steps=20, eval_interval=10, folds=2)
    s.sweep.trials, s.sweep.parallel = 2, 1
    s.sweep.space = {"optim.lr": {"low": 1e-3, "high": 3e-2, "log": True}}
    s.sweep.pruner = "none"
    save_session(s, tmp_path / "s.toml")
    sweep = Sweep(s)
    study = sweep.run()
    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for t in trials:
        runs = [Path(p) for p in t.user_attrs["fold_runs"]]
        assert len(runs) == 2 and t.user_attrs["run_dir"] == str(runs[0])
        infos = [read_run_info(r) for r in runs]
        assert [run_fold(i)[1:] for i in infos] == [(0, 2), (1, 2)]
        assert all(i["trial"] == t.number for i in infos)
        losses = [i["best_val_loss"] for i in infos]
        assert t.value == pytest.approx(statistics.fmean(losses))  # the mean is optimised
        assert t.user_attrs["fold_losses"] == pytest.approx(losses)
        for r in runs:  # each fold trained the trial's sampled value on its own block
            frozen = load_session(r / "session.toml")
            assert frozen.optim.lr == t.params["optim.lr"] and frozen.data.folds == 2
        # the intermediate values Optuna saw (and a pruner would) are fold 0's val losses
        fold0 = {m["step"]: m["val_loss"] for m in read_metrics(runs[0])
                 if m.get("type") == "eval"}
        assert t.intermediate_values == pytest.approx(fold0)
    assert study.best_value == min(t.value for t in trials)
