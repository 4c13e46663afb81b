"""Folders someone else wrote: files that are not files, claims that do not match the weights,
weights that cannot be right. Each gets one line and exit 2, before anything large is built."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from helpers import cli
from helpers.cli import one_line_exit_2
from helpers.sessions import tiny_session
from safetensors.torch import load_file, save_file

from core import tokenizers
from core.checkpoint import WEIGHTS_FILE, list_checkpoints
from core.engine import Engine
from core.errors import SessionError, TokenizerError
from core.fileio import UnreadableFile, read_small_file
from core.session import load_session, save_session

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ADDRESS_SPACE = 6 << 30  # torch needs ~2-3 GiB of address space to start; a bomb needs far more


# The CLI in a subprocess; with memory_cap=ADDRESS_SPACE a regression fails fast (MemoryError
# or a kill) instead of eating the machine.
llmlab = functools.partial(cli.llmlab, columns=200, cache=False, timeout=60)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 4-step run of a tiny GPT with one checkpoint."""
    folder = tmp_path_factory.mktemp("hostile")
    session = tiny_session(folder, max_steps=4)
    save_session(session, folder / "t.toml")
    events: list = []
    assert Engine(session, events.append).train() == "finished"
    (run,) = (folder / "runs" / "t").iterdir()
    return run


@pytest.fixture
def copy_of(run_dir: Path, tmp_path: Path):
    """A copy of the trained run to damage (the module's run stays intact)."""
    def make() -> Path:
        dest = tmp_path / "runs" / "t" / run_dir.name
        shutil.copytree(run_dir, dest)
        return dest

    return make


# ------------------------------------------------------------------- files that are not files

def test_read_small_file_refuses_devices_fifos_folders_and_oversize(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "zero").symlink_to("/dev/zero")
    for path, kind in [(fifo, "a FIFO"), (tmp_path / "zero", "a character device"),
                       (tmp_path, "a folder")]:
        with pytest.raises(UnreadableFile, match=f"not a regular file \\({kind}\\)"):
            read_small_file(path)
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(UnreadableFile, match="101 bytes, more than the 100"):
        read_small_file(tmp_path / "big", limit=100)
    assert read_small_file(tmp_path / "big", limit=101) == b"x" * 101


def test_a_session_that_is_a_fifo_or_dev_zero_is_refused_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.toml")
    (tmp_path / "zero.toml").symlink_to("/dev/zero")
    for name in ("fifo.toml", "zero.toml"):
        with pytest.raises(SessionError, match="not a regular file"):
            load_session(tmp_path / name)
        line = one_line_exit_2(llmlab(tmp_path, "check", name, timeout=30))
        assert name in line and "not a regular file" in line


def test_one_run_whose_run_json_is_dev_zero_does_not_hide_the_others(run_dir: Path,
                                                                     copy_of) -> None:
    good = copy_of()
    bad = good.parent / "20990101-000000"
    bad.mkdir()
    (bad / "run.json").symlink_to("/dev/zero")
    (bad / "metrics.jsonl").symlink_to("/dev/zero")
    result = llmlab(good.parents[2], "runs", memory_cap=ADDRESS_SPACE)
    assert result.returncode == 0, result.stderr[-2000:]
    assert good.name in result.stdout


# ------------------------------------------------------------------- claims against weights

def claim(session_file: Path, **model: int) -> None:
    """Edit [model] fields of a frozen session in place, as a hand edit would."""
    text = session_file.read_text()
    for key, value in model.items():
        text, n = re.subn(rf"^{key} = \d+", f"{key} = {value}", text, count=1, flags=re.M)
        assert n == 1, key
    session_file.write_text(text)


def test_a_session_claiming_a_huge_model_beside_small_weights_is_refused_before_building(
        copy_of) -> None:
    run = copy_of()
    claim(run / "session.toml", n_layer=1000, n_embd=8192)
    for args in (("eval", str(run)), ("sample", str(run), "--prompt", "ab", "--tokens", "2")):
        line = one_line_exit_2(llmlab(run.parents[2], *args, memory_cap=ADDRESS_SPACE))
        assert "n_layer=1000 n_embd=8192" in line and "refused before building it" in line


def test_a_compressed_model_claiming_a_huge_model_is_refused_before_building(
        run_dir: Path, tmp_path: Path) -> None:
    result = llmlab(run_dir.parents[2], "quantize", str(run_dir), timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    (model,) = (run_dir / "compressed").iterdir()
    bomb = tmp_path / "bomb"
    shutil.copytree(model, bomb)
    info = json.loads((bomb / "compressed.json").read_text())
    info["arch"].update(n_layer=1000, n_embd=8192)
    (bomb / "compressed.json").write_text(json.dumps(info))
    line = one_line_exit_2(llmlab(tmp_path, "eval", str(bomb), memory_cap=ADDRESS_SPACE))
    assert "compressed.json describes it" in line and "refused before building it" in line


def test_resuming_a_run_whose_session_claims_another_model_is_refused(copy_of) -> None:
    run = copy_of()
    claim(run / "session.toml", n_embd=4096)
    (run / "run.json").write_text(json.dumps({**json.loads((run / "run.json").read_text()),
                                              "status": "stopped"}))
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    line = one_line_exit_2(llmlab(run.parents[2], "train", str(run / "session.toml"),
                                  "--resume", str(run), memory_cap=ADDRESS_SPACE))
    assert "claims" in line and "refused before building it" in line
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == before


# ------------------------------------------------------------------- weights that cannot be right

def _rewrite_weights(run: Path, change) -> None:
    for ckpt in list_checkpoints(run / "checkpoints"):
        file = ckpt.path / WEIGHTS_FILE
        tensors = load_file(str(file))
        save_file({k: change(v) for k, v in tensors.items()}, str(file))


@pytest.mark.parametrize("change, words", [
    (lambda t: t.to(torch.int64), "I64 weights"),
    (lambda t: torch.full_like(t, float("nan")), "NaN or infinite values"),
])
def test_integer_or_nan_weights_are_refused_on_load(copy_of, change, words: str) -> None:
    run = copy_of()
    _rewrite_weights(run, change)
    line = one_line_exit_2(llmlab(run.parents[2], "eval", str(run)))
    assert words in line and str(run) in line


# ------------------------------------------------------------------- tokenizer files

def test_a_tokenizer_claiming_too_many_tokens_is_refused_before_it_is_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokenizers, "MAX_VOCAB", 10)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps({"kind": "word", "vocab": [f"w{i}" for i in range(11)]}))
    with pytest.raises(TokenizerError, match="a vocabulary of 11 tokens, more than the 10"):
        tokenizers.load_tokenizer(path)
    path.write_text(json.dumps({"kind": "word", "vocab": [f"w{i}" for i in range(9)]}))
    assert tokenizers.load_tokenizer(path).vocab_size == 10  # <unk> added


def test_no_cap_on_word_vocabulary_still_stops_at_the_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What llmlab trains, llmlab loads again: vocab_size = 0 means at most MAX_VOCAB."""
    monkeypatch.setattr(tokenizers, "MAX_VOCAB", 5)
    tok = tokenizers.train_tokenizer("word", ["a b c d e f g h a a b"], vocab_size=0)
    assert tok.vocab_size == 5 and tok.vocab[:3] == ["<unk>", "a", "b"]


def test_a_tokenizer_file_over_its_size_cap_or_not_a_file_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokenizers, "TOKENIZER_FILE_LIMIT", 50)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps({"kind": "word", "vocab": [f"word{i}" for i in range(20)]}))
    with pytest.raises(TokenizerError, match="more than the 50"):
        tokenizers.load_tokenizer(path)
    path.unlink()
    path.symlink_to("/dev/urandom")
    with pytest.raises(TokenizerError, match="not a regular file"):
        tokenizers.load_tokenizer(path)
