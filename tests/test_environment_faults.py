"""The environment's faults and signals: SIGTERM, a full disk, a folder that cannot be
written, permissions, and the litter a kill leaves. Each is one line, nothing lost."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from test_train_cli import env_for, llmlab, runs_of, sets

from core.checkpoint import list_checkpoints
from core.runs import read_metrics, read_run_info


def _start_training(folder: Path, steps: int) -> tuple[subprocess.Popen, Path]:
    """`llmlab train` in the background, once it has trained three steps."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmlab", "train", "s.toml",
         *sets(f"train.max_steps={steps}", "train.eval_interval=0", "train.log_interval=1",
               "train.checkpoint_interval=0")],
        cwd=folder, env=env_for(folder), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        found = runs_of(folder)
        if found and sum(r.get("type") == "train" for r in read_metrics(found[0])) >= 3:
            return proc, found[0]
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"no training progress seen: {proc.communicate()[1]}")


def test_sigterm_stops_at_the_next_step_with_a_checkpoint(tmp_path):
    """`kill`, systemd and cluster schedulers send SIGTERM: it used to end the process at
    once (exit 143, no checkpoint, run.json still "running")."""
    assert llmlab(tmp_path, "init", "s.toml").returncode == 0
    proc, run_dir = _start_training(tmp_path, steps=400)
    try:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    (stopped_at,) = [c.step for c in list_checkpoints(run_dir / "checkpoints")]
    assert 3 <= stopped_at < 400
    assert f"stopped at step {stopped_at}" in stderr and f"--resume {run_dir}" in stderr
    assert read_run_info(run_dir)["status"] == "stopped"
