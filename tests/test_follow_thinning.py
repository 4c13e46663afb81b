"""Attaching to a long run reads its metrics.jsonl thinned (core.follow.read_thinned): every
record that is not a train record, in file order, and an even sample of the train records
with the latest step always among them; a damaged line is skipped, never fatal."""

from __future__ import annotations

import json
from pathlib import Path

from core.follow import MetricsTail, RunFollower, read_thinned


def _write(path: Path, steps: int, damaged_at: int = -1) -> list[dict]:
    """A metrics.jsonl as RunWriter writes it: a train record a step, an eval and a sample
    every 10 steps, one hparam change; the records, in file order."""
    records = []
    for step in range(1, steps + 1):
        records.append({"type": "train", "step": step, "tokens": step * 64, "loss": 1 / step,
                        "lr": 1e-3, "grad_norm": 0.5, "tokens_per_s": 1000.0 + step,
                        "time": 1000.0 + step})
        if step % 10 == 0:
            records.append({"type": "eval", "step": step, "split": "val", "val_loss": 2.0,
                            "val_top1": 0.5, "time": 1000.0 + step})
            records.append({"type": "sample", "step": step, "prompt": "a", "text": "b"})
        if step == 33:
            records.append({"type": "hparam", "step": step, "name": "optim.lr", "old": 1e-3,
                            "new": 5e-4})
    lines = [json.dumps(r) for r in records]
    if damaged_at >= 0:
        lines.insert(damaged_at, '{"type": "train", "step": 99999, "loss": 0.')  # cut short
    path.write_text("\n".join(lines) + "\n")
    return records


def _key(record: dict) -> tuple:
    return (record["type"], record["step"])


def test_a_long_run_is_thinned_evenly_in_file_order_with_its_last_step(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    written = _write(path, 1003)
    records, count = read_thinned(MetricsTail(path), points=50)

    assert count == 1003
    order = {_key(r): i for i, r in enumerate(written)}
    positions = [order[_key(r)] for r in records]
    assert positions == sorted(positions), "records out of file order"
    assert all(r == written[order[_key(r)]] for r in records), "a record changed on the way"
    others = [r for r in written if r["type"] != "train"]
    assert [r for r in records if r["type"] != "train"] == others, "a non-train record lost"
    steps = [r["step"] for r in records if r["type"] == "train"]
    assert steps[-1] == 1003, "the latest step is always kept"
    every = steps[1] - steps[0]
    assert every & (every - 1) == 0 and every > 1, "thinned by a power of two"
    assert steps[:-1] == list(range(1, 1004, every))
    assert 50 < len(steps) <= 2 * 50 + 1


def test_a_short_run_is_read_whole_and_a_damaged_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    written = _write(path, 40, damaged_at=7)
    records, count = read_thinned(MetricsTail(path), points=50)
    assert records == written
    assert count == 41  # (the damaged line looked like a train record: counted, not kept)


def test_attach_then_poll_reads_each_record_once(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"status": "running", "max_steps": 10}))
    written = _write(tmp_path / "metrics.jsonl", 10)
    follower = RunFollower(tmp_path)
    attached = follower.attach(points=4)
    assert attached is not None and attached.last_step() == 10
    assert attached.train_records == 10
    assert [r for r in attached.records if r["type"] != "train"] == \
        [r for r in written if r["type"] != "train"]
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"type": "train", "step": 11, "loss": 0.1, "lr": 1e-3}) + "\n")
    steps = [e.step for e in follower.poll(state=False)]
    assert steps == [11]
