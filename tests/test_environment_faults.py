"""The environment's faults and signals: SIGTERM, a full disk, a folder that cannot be
written, permissions, and the litter a kill leaves. Each is one line, nothing lost."""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.sessions import tiny_session
from safetensors import SafetensorError
from test_train_cli import env_for, llmlab, one_line, runs_of, sets
from torch import nn

from core import checkpoint
from core import messages as msg
from core.checkpoint import list_checkpoints, save_checkpoint
from core.dataset import STALE_BUILD_S, load_dataset
from core.engine import Engine
from core.errors import LlmlabError
from core.run_writer import RunWriter
from core.runs import check_runs_root, read_metrics, read_run_info
from core.session import DataConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


def test_checkpoint_folders_get_the_users_usual_permissions(tmp_path):
    """mkdtemp's 0700 stayed on every checkpoint folder: a colleague in the group could not
    read a shared run's weights."""
    umask = os.umask(0o022)
    try:
        folder = save_checkpoint(tmp_path / "checkpoints", 1, nn.Linear(2, 2), {}, {})
    finally:
        os.umask(umask)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755


def test_a_killed_builds_temp_folder_is_swept_when_a_build_starts(tmp_path):
    """A kill during tokenization left a hidden `.KEY.*` folder for ever (3 kills, 177 MB)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    hour_ago = time.time() - 2 * STALE_BUILD_S

    def build_folder(name: str, age: float) -> Path:
        folder = cache / name
        folder.mkdir()
        (folder / "tokens.bin").write_bytes(b"x" * 64)
        for path in (folder / "tokens.bin", folder):
            os.utime(path, (age, age))
        return folder

    killed = build_folder(f".{'a' * 24}.1234abcd", hour_ago)
    killed_earlier = build_folder(f".{'d' * 24}.x_7Qz0k1", hour_ago)  # mkdtemp's name
    live = build_folder(f".{'b' * 24}.5678abcd", hour_ago)  # a long build, still held
    recent = build_folder(f".{'c' * 24}.9abcabcd", time.time())  # another build just begun
    not_ours = build_folder(".somebody-elses", hour_ago)
    holder = os.open(live, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        corpus = tmp_path / "c.txt"
        corpus.write_text("hello world\n" * 50, encoding="utf-8")
        cfg = DataConfig(corpus=str(corpus), tokenizer="char", vocab_size=0)
        load_dataset(cfg, cache_dir=cache)
    finally:
        os.close(holder)
    assert not killed.exists() and not killed_earlier.exists()
    assert live.is_dir() and recent.is_dir() and not_ours.is_dir()
    assert [p.name.startswith(".") for p in cache.iterdir()].count(False) == 1  # the entry


def _train(session, resume=None) -> tuple[str, list]:
    events: list = []
    final = Engine(session, events.append).train(resume)
    return final, events


def test_disk_full_at_a_checkpoint_stops_the_run_resumable(tmp_path, monkeypatch):
    """Disk full inside a checkpoint write was `internal error: SafetensorError ... No space
    left on device` (or torch's `enforce fail at inline_container.cc`) and left run.json
    "running"; now one line naming the checkpoint, status "stopped: disk full", the earlier
    checkpoint intact, and the resume still exact."""
    # One thread for both runs whatever the load: core.device fits the count to the idle cores,
    # and a different count sums in another order (the two runs then differ in the last bit).
    monkeypatch.setenv("LLMLAB_THREADS", "1")
    straight, _ = _train(tiny_session(tmp_path / "straight", max_steps=12,
                                      checkpoint_interval=4))
    assert straight == "finished"
    (straight_dir,) = (tmp_path / "straight" / "runs" / "t").iterdir()

    real_save_model = checkpoint.save_model
    saves = []

    def full_disk_after_one(model, filename, *args, **kwargs):
        saves.append(filename)
        if len(saves) > 1:  # safetensors' own wording of ENOSPC
            raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: "
                                  "StorageFull, message: \"No space left on device\" })"
                                  " No space left on device (os error 28)")
        real_save_model(model, filename, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_model", full_disk_after_one)
    final, events = _train(tiny_session(tmp_path, max_steps=12, checkpoint_interval=4))
    (run_dir,) = (tmp_path / "runs" / "t").iterdir()
    (error,) = [e.message for e in events if isinstance(e, msg.Error)]
    assert final == "failed"
    assert error == f"{run_dir / 'checkpoints' / 'step-0000008'}: cannot save checkpoint: disk full"
    assert read_run_info(run_dir)["status"] == "stopped: disk full"
    assert [c.step for c in list_checkpoints(run_dir / "checkpoints")] == [4]
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]

    monkeypatch.setattr(checkpoint, "save_model", real_save_model)  # space freed
    final, _ = _train(tiny_session(tmp_path), resume=run_dir)
    assert final == "finished"
    assert read_run_info(run_dir)["status"] == "finished"
    losses = [[r["loss"] for r in read_metrics(d) if r.get("type") == "train"]
              for d in (run_dir, straight_dir)]
    assert losses[0] == losses[1] and len(losses[0]) == 12


def _capped_train(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """`llmlab train` under a real refusal: a file-size limit (RLIMIT_FSIZE, with SIGXFSZ
    ignored so a write fails with EFBIG as on a full disk) below a checkpoint's size."""
    def cap() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))

    return subprocess.run([sys.executable, "-m", "llmlab", "train", "s.toml", *args],
                          cwd=folder, env=env_for(folder), capture_output=True, text=True,
                          timeout=120, preexec_fn=cap)


def test_a_file_size_limit_while_tokenizing_is_one_line_and_exit_2(tmp_path):
    """It was `internal error: OSError: 400001 requested and 30000 written` (numpy's)."""
    assert llmlab(tmp_path, "init", "s.toml").returncode == 0
    result = _capped_train(tmp_path, *sets("train.max_steps=20"))
    assert result.returncode == 2, result.stderr
    (entry,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert entry.startswith(str(tmp_path / "cache"))
    assert entry.endswith(": cannot build the token cache: file too large")
    assert list((tmp_path / "cache").iterdir()) == [] and runs_of(tmp_path) == []


def test_a_file_size_limit_in_a_checkpoint_is_one_line_and_exit_2(tmp_path):
    """The real writers (torch.save, safetensors) under a real refusal."""
    assert llmlab(tmp_path, "init", "s.toml").returncode == 0
    warm = llmlab(tmp_path, "train", "s.toml", *sets("train.max_steps=6"))  # the token cache
    assert warm.returncode == 0, warm.stderr
    shutil.rmtree(tmp_path / "runs")

    result = _capped_train(tmp_path, *sets("train.max_steps=20", "train.checkpoint_interval=10"))
    (run_dir,) = runs_of(tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert (f"{run_dir / 'checkpoints' / 'step-0000010'}: cannot save checkpoint: "
            "file too large") in result.stderr.splitlines()
    assert read_run_info(run_dir)["status"] == "stopped: file too large"
    assert list_checkpoints(run_dir / "checkpoints") == []
    assert not list((run_dir / "checkpoints").glob(".*"))


@pytest.mark.parametrize(("runs_dir", "cause"), [
    ("/proc/1", "no such file or directory"),  # a folder nothing can be made in
    ("s.toml/runs", "not a directory"),  # a runs folder under a file (resolved absolute)
])
def test_an_unusable_runs_dir_is_one_line_and_exit_2(tmp_path, runs_dir, cause):
    """These were `internal error: FileNotFoundError: [Errno 2] ... '/proc/1/s'`, exit 1."""
    assert llmlab(tmp_path, "init", "s.toml").returncode == 0
    result = llmlab(tmp_path, "train", "s.toml",
                    *sets("train.max_steps=6", f'train.runs_dir="{runs_dir}"'))
    assert result.returncode == 2, result.stderr
    assert one_line(result.stderr) == (f"train.runs_dir {tmp_path / runs_dir}: cannot create a run "
                                       f"folder: {cause}")


def test_a_read_only_runs_folder_is_one_line(tmp_path, monkeypatch):
    """Root writes through chmod, so the read-only mount is the kernel's EROFS, simulated:
    it was `internal error: OSError: [Errno 30] Read-only file system`."""
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if tmp_path / "runs" in (self, *self.parents):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    final, events = _train(tiny_session(tmp_path))
    (error,) = [e.message for e in events if isinstance(e, msg.Error)]
    assert final == "failed"
    assert error == (f"train.runs_dir {tmp_path / 'runs'}: cannot create a run folder: "
                     "read-only file system")


def test_disk_full_while_logging_metrics_stops_the_run_resumable(tmp_path, monkeypatch):
    """The metrics line after step 5 cannot be written: one line naming metrics.jsonl, and
    the run stays resumable from its last checkpoint (was: internal error: OSError)."""
    real_open = RunWriter._open_metrics

    class FullAfterFive:
        def __init__(self, file):
            self.file, self.lines = file, 0

        def write(self, text: str) -> int:
            self.lines += 1
            if self.lines > 5:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.file.write(text)

        def __getattr__(self, name: str):
            return getattr(self.file, name)

    monkeypatch.setattr(RunWriter, "_open_metrics", lambda self: FullAfterFive(real_open(self)))
    final, events = _train(tiny_session(tmp_path, checkpoint_interval=2))
    (run_dir,) = (tmp_path / "runs" / "t").iterdir()
    (error,) = [e.message for e in events if isinstance(e, msg.Error)]
    assert final == "failed"
    assert error == f"{run_dir / 'metrics.jsonl'}: cannot write metrics: disk full"
    assert read_run_info(run_dir)["status"] == "stopped: disk full"
    assert list_checkpoints(run_dir / "checkpoints")


def test_check_finds_a_read_only_runs_folder(tmp_path, monkeypatch):
    """Root passes os.access on a read-only mount: `check` said OK and `train` then failed."""
    real_statvfs = os.statvfs

    def read_only_mount(path):
        result = real_statvfs(path)
        if Path(path) == tmp_path:
            return os.statvfs_result((*result[:8], result.f_flag | os.ST_RDONLY, result[9]))
        return result

    monkeypatch.setattr(os, "statvfs", read_only_mount)
    with pytest.raises(LlmlabError) as err:
        check_runs_root(tmp_path / "runs")
    assert str(err.value) == (f"{tmp_path / 'runs'}: cannot be created "
                              f"({tmp_path}: read-only file system)")
    with pytest.raises(LlmlabError, match=r": read-only file system$"):
        check_runs_root(tmp_path)
