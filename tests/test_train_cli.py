"""`llmlab train | runs | eval | sample` end to end, as a user runs them (subprocesses)."""

from __future__ import annotations

import functools
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import cli

from core.checkpoint import list_checkpoints
from core.runs import read_metrics, read_run_info

TINY = [
    "data.corpus=sample:synthetic", "model.n_layer=1", "model.n_embd=32", "model.n_head=2",
    "model.context=16", "train.batch_size=8", "optim.lr=1e-2", "optim.warmup_steps=5",
    "optim.min_lr=1e-3", "train.eval_iters=4", "train.seed=1",
]


def sets(*items: str) -> list[str]:
    return [arg for item in (*TINY, *items) for arg in ("--set", item)]


llmlab = functools.partial(cli.llmlab, columns=200)
env_for = functools.partial(cli.cli_env, columns=200)  # (for a Popen)


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1 and lines[0].strip(), repr(text)  # no blank lines either
    assert "Traceback" not in text
    return lines[0]


def runs_of(folder: Path) -> list[Path]:
    parent = folder / "runs" / "s"
    return sorted(parent.iterdir()) if parent.is_dir() else []


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """A session folder with one finished 60-step run: (folder, run folder, train result)."""
    folder = tmp_path_factory.mktemp("cli")
    init = llmlab(folder, "init", "s.toml")
    assert init.returncode == 0, init.stderr
    assert (folder / "s.toml").is_file()
    result = llmlab(folder, "train", "s.toml", *sets(
        "train.max_steps=60", "train.eval_interval=20", "train.log_interval=10",
        "train.checkpoint_interval=20"))
    (run_dir,) = runs_of(folder)
    return folder, run_dir, result


def test_train_runs_to_the_end_and_runs_lists_it(trained):
    folder, run_dir, result = trained
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert f"run folder {run_dir}" in result.stdout + result.stderr
    info = read_run_info(run_dir)
    assert info["status"] == "finished" and info["step"] == 60
    steps = [r["step"] for r in read_metrics(run_dir) if r.get("type") == "train"]
    assert steps == [1, 10, 20, 30, 40, 50, 60]
    # Each evaluation writes a sample of the model's text, and headless output shows it.
    samples = [r for r in read_metrics(run_dir) if r.get("type") == "sample"]
    assert [r["step"] for r in samples] == [0, 20, 40, 60]
    shown = [line for line in (result.stdout + result.stderr).splitlines() if " sample: " in line]
    assert [line.split(" sample: ")[0] for line in shown] == [
        "step 0", "step 20", "step 40", "step 60"]
    assert all("\n" not in r["text"] or "↵" in line for r, line in zip(samples, shown,
                                                                        strict=True))

    listing = llmlab(folder, "runs")
    assert listing.returncode == 0, listing.stderr
    (row,) = [line for line in listing.stdout.splitlines() if f"s/{run_dir.name}" in line]
    assert "60/60" in row and "finished" in row and "gpt" in row
    assert f"{info['best_val_loss']:.4f}" in row


def test_runs_exports_every_metrics_record_to_csv(trained):
    import csv

    folder, run_dir, _ = trained
    result = llmlab(folder, "runs", "--csv", "metrics.csv")
    assert result.returncode == 0, result.stderr
    with open(folder / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    records = read_metrics(run_dir)
    assert len(rows) == len(records)
    assert {row["run"] for row in rows} == {f"s/{run_dir.name}"}
    train = [row for row in rows if row["type"] == "train"]
    assert [int(row["step"]) for row in train] == [1, 10, 20, 30, 40, 50, 60]
    assert float(train[-1]["loss"]) == next(
        r["loss"] for r in reversed(records) if r["type"] == "train")
    evals = [row for row in rows if row["type"] == "eval"]
    assert all(row["val_loss"] for row in evals) and not train[0]["val_loss"]


def test_eval_prints_the_best_checkpoint_figures(trained):
    folder, run_dir, _ = trained
    result = llmlab(folder, "eval", "s", "--iters", "4")
    assert result.returncode == 0, result.stderr
    for column in ("loss", "perplexity", "top-1", "top-5"):
        assert column in result.stdout
    info = read_run_info(run_dir)
    assert f"checkpoint step {info['best_step']}" in result.stdout
    assert "sampled 4 batches of the val split: 512 tokens" in result.stdout  # 4 x 8 x 16
    # The same batches (the run's eval seed, its eval_iters) and the same weights: the same
    # loss as training saw.
    assert f"{info['best_val_loss']:.4f}" in result.stdout


def test_eval_evaluates_the_whole_split_by_default_and_says_so(trained):
    folder, run_dir, _ = trained
    full = llmlab(folder, "eval", "s")
    assert full.returncode == 0, full.stderr
    from core.dataset import load_dataset
    from core.runs import load_run_session

    session = load_run_session(run_dir)
    ds = load_dataset(session.data, session.base_dir, cache_dir=folder / "cache")
    first = full.stdout.splitlines()[0]
    # Every token of the split after its first is a target once.
    assert f"full val split: {len(ds.split_tokens('val')) - 1:,} tokens" in first
    assert "sampled" not in first
    sampled = llmlab(folder, "eval", "s", "--iters", "2")
    assert sampled.returncode == 0, sampled.stderr
    line = sampled.stdout.splitlines()[0]
    assert "sampled 2 batches of the val split: 256 tokens" in line and "full" not in line
    assert full.stdout.splitlines()[1:] != sampled.stdout.splitlines()[1:]


def test_eval_of_an_empty_test_split_is_one_clear_line(trained):
    folder, _, _ = trained
    result = llmlab(folder, "eval", "latest", "--split", "test")
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "test split" in line and "0 tokens" in line


def test_sample_continues_the_prompt_and_is_repeatable(trained):
    folder, _, _ = trained
    args = ("sample", "latest", "--prompt", "jo", "--tokens", "20", "--seed", "1")
    first, second = llmlab(folder, *args), llmlab(folder, *args)
    assert first.returncode == 0, first.stderr
    assert first.stdout.endswith("\n")
    text = first.stdout[:-1]
    assert text.startswith("jo") and len(text) == 22  # char tokens: 20 new characters
    assert set(text) <= set("abcdefghijklmnop\n")  # the corpus's alphabet
    assert second.stdout == first.stdout

    bad = llmlab(folder, *args, "--top-p", "0")
    assert bad.returncode == 2
    assert "--top-p" in one_line(bad.stderr)
    assert bad.stdout == ""


@pytest.mark.parametrize(("args", "expected"), [
    (["train", "s.toml", "--set", "model.n_embd=64", "--set", "model.n_head=3"],
     "model.n_head"),
    (["train", "missing.toml"], "missing.toml"),
    (["train", "s.toml", "--resume", "nope"], "nope"),
    (["train", "s.toml", "--set", "data.corpus=no-such-corpus.txt"], "no-such-corpus.txt"),
    (["eval", "latest", "--iters", "-1"], "--iters"),
])
def test_bad_input_is_exit_2_with_one_line(tmp_path, args, expected):
    assert llmlab(tmp_path, "init", "s.toml").returncode == 0
    result = llmlab(tmp_path, *args)
    assert result.returncode == 2
    assert expected in one_line(result.stderr)
    assert runs_of(tmp_path) == []


def test_ctrl_c_stops_with_a_checkpoint_that_resumes_exactly(tmp_path):
    assert llmlab(tmp_path, "init", "s.toml").returncode == 0
    steps = 400
    long_run = sets(f"train.max_steps={steps}", "train.eval_interval=0", "train.log_interval=1",
                    "train.checkpoint_interval=0", "model.dropout=0.1")
    # The same run never interrupted, in its own folder, alongside (to save time).
    (tmp_path / "straight").mkdir()
    (tmp_path / "straight" / "s.toml").write_bytes((tmp_path / "s.toml").read_bytes())
    straight = subprocess.Popen(
        [sys.executable, "-m", "llmlab", "train", "s.toml", *long_run], cwd=tmp_path / "straight",
        env=env_for(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc = subprocess.Popen([sys.executable, "-m", "llmlab", "train", "s.toml", *long_run],
                            cwd=tmp_path, env=env_for(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        run_dir = None
        while time.monotonic() < deadline and proc.poll() is None:
            found = runs_of(tmp_path)
            if found and sum(r.get("type") == "train" for r in read_metrics(found[0])) >= 3:
                run_dir = found[0]
                break
            time.sleep(0.01)
        assert run_dir is not None, "no training progress seen"
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, stderr = proc.communicate(timeout=30)
        assert time.monotonic() - sent < 10

        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr
        assert f"--resume {run_dir}" in stderr and "continue with: llmlab train s.toml" in stderr
        (stopped_at,) = [c.step for c in list_checkpoints(run_dir / "checkpoints")]
        assert 3 <= stopped_at < steps
        assert f"stopped at step {stopped_at}" in stderr
        assert read_run_info(run_dir)["status"] == "stopped"

        resumed = llmlab(tmp_path, "train", "s.toml", "--resume", str(run_dir))
        _, straight_err = straight.communicate(timeout=120)
    finally:
        for p in (proc, straight):
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert resumed.returncode == 0, resumed.stderr
    info = read_run_info(run_dir)
    assert info["status"] == "finished" and info["step"] == steps
    records = [r for r in read_metrics(run_dir) if r.get("type") == "train"]
    assert [r["step"] for r in records] == list(range(1, steps + 1))

    # The stop came between two steps: the run never interrupted ends at the very same loss.
    assert straight.returncode == 0, straight_err
    (other,) = runs_of(tmp_path / "straight")
    lines = (other / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    final = [r for r in map(json.loads, lines) if r["type"] == "train"][-1]
    assert final["step"] == steps and final["loss"] == records[-1]["loss"]


def test_runs_keeps_the_full_run_id_at_80_columns(trained):
    """The id is what the other verbs take: at 80 columns it was cut ("s/20261…")."""
    folder, run_dir, _ = trained
    for session_name in ("s", "a-rather-long-session-name-for-a-sweep-of-gpt-models"):
        other = folder / "runs" / session_name / run_dir.name
        if session_name != "s":
            import shutil

            shutil.copytree(run_dir, other)
        listing = llmlab(folder, "runs", columns=80)
        assert listing.returncode == 0, listing.stderr
        assert f"{session_name}/{run_dir.name}" in listing.stdout
        assert "finished" in listing.stdout and "…" not in listing.stdout
        assert max(map(len, listing.stdout.splitlines())) <= 80


def test_a_run_lost_before_its_first_checkpoint_says_so_and_how_to_start_again(tmp_path):
    """A training killed at step 40 with no checkpoint (a dropped SSH connection) left
    run.json "running" forever and --resume said only "no complete checkpoint"."""
    import socket

    from core.session import load_session, save_session

    assert llmlab(tmp_path, "init", "s.toml").returncode == 0
    run_dir = tmp_path / "runs" / "s" / "20250101-120000"
    run_dir.mkdir(parents=True)
    frozen = load_session(tmp_path / "s.toml", [*TINY, "train.max_steps=8",
                                                "train.eval_interval=0"])
    save_session(frozen, run_dir / "session.toml")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    (run_dir / "run.json").write_text(json.dumps({
        "session": "s", "arch": "gpt", "params": 1000, "max_steps": 8, "step": 4,
        "created": "2025-01-01T12:00:00", "status": "running", "pid": int(dead.stdout),
        "host": socket.gethostname()}))

    listing = llmlab(tmp_path, "runs", columns=80)
    assert "s/20250101-120000" in listing.stdout and "lost, no checkpoint" in listing.stdout

    result = llmlab(tmp_path, "train", "s.toml", "--resume", "s/20250101-120000")
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith(f"{run_dir}: lost, no checkpoint to resume from; start it again "
                           "with: llmlab train ")
    # The command it names starts a new run of the same session, next to the lost one.
    import shlex

    again = shlex.split(line.split("start it again with: ", 1)[1])
    assert again[:2] == ["llmlab", "train"]
    restarted = llmlab(tmp_path / "runs", *again[1:])  # (from another folder: it still works)
    assert restarted.returncode == 0, restarted.stderr
    new = [p for p in runs_of(tmp_path) if p != run_dir]
    assert len(new) == 1 and read_run_info(new[0])["status"] == "finished"
    assert read_run_info(run_dir)["status"] == "running"  # the lost run is left as it was
