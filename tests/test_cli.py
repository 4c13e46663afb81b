"""`llmlab` as a user runs it: exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.cli import llmlab

from core.session import Session, load_session, save_session, set_field


def saved(folder: Path, name: str, fields: dict[str, Any]) -> None:
    """A session `name` with `fields` (dotted path -> value) set, saved as folder/<name>.toml."""
    session = Session(name=name)
    for path, value in fields.items():
        set_field(session, path, value)
    save_session(session, folder / f"{name}.toml")


@pytest.fixture
def run(tmp_path):
    return lambda *args: llmlab(tmp_path, *args, columns=100)


def test_check_ok(run, tmp_path):
    save_session(Session(name="ok"), tmp_path / "ok.toml")
    result = run("check", "ok.toml")
    assert result.returncode == 0
    assert "OK" in result.stdout


def test_check_lists_every_problem_and_exits_2(run, tmp_path):
    (tmp_path / "bad.toml").write_text(
        '[train]\nmax_step = 3\n[model]\nn_head = 5\n[optim]\nlr = 0\n')
    result = run("check", "bad.toml")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert sorted(lines) == [
        "model.n_head: must divide model.n_embd (128 % 5 != 0)",
        "optim.lr: must be > 0.0 (got 0.0)",
        "train.max_step: unknown key (did you mean 'max_steps'?)",
    ]
    assert "Traceback" not in result.stderr


def test_check_syntax_error_is_one_line(run, tmp_path):
    (tmp_path / "broken.toml").write_text('name = "x"\n[model\n')
    result = run("check", "broken.toml")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "TOML syntax error" in result.stderr and "line 2" in result.stderr


def test_check_with_overrides(run, tmp_path):
    save_session(Session(name="o"), tmp_path / "o.toml")
    assert run("check", "o.toml", "--set", "model.n_layer=6").returncode == 0
    result = run("check", "o.toml", "--set", "model.n_layer=-6")
    assert result.returncode == 2
    assert result.stderr.strip() == "model.n_layer: must be >= 1 (got -6)"


def test_missing_session_file(run):
    result = run("check", "nope.toml")
    assert result.returncode == 2
    assert result.stderr.strip() == "nope.toml: no such session file"


def test_init_writes_a_valid_session_and_never_overwrites(run, tmp_path):
    assert run("init", "new.toml").returncode == 0
    session = load_session(tmp_path / "new.toml")
    assert session.name == "new"
    (tmp_path / "new.toml").write_text("mine")
    result = run("init", "new.toml")
    assert result.returncode == 2
    assert "already exists" in result.stderr
    assert (tmp_path / "new.toml").read_text() == "mine"


def test_data_shows_statistics_and_caches(run, tmp_path):
    (tmp_path / "corpus.txt").write_text("the cat sat on the mat\n" * 50)
    saved(tmp_path, "d", {"data.corpus": "corpus.txt", "data.tokenizer": "word"})
    first = run("data", "d.toml", "--preview", "30")
    assert first.returncode == 0, first.stderr
    assert "tokenized now" in first.stdout
    assert "350" in first.stdout  # 6 words + a line break, 50 times
    assert "the cat sat" in first.stdout
    second = run("data", "d.toml")
    assert "cache hit" in second.stdout


def test_data_bad_corpus_is_one_line_exit_2(run, tmp_path):
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\x02binary")
    save_session(Session(name="b"), tmp_path / "b.toml")
    result = run("data", "b.toml", "--set", "data.corpus=blob.bin")
    assert result.returncode == 2
    assert result.stderr.strip() == f"{tmp_path / 'blob.bin'}: binary file, not text " \
                                    "(NUL byte at offset 0)"
    assert not (tmp_path / "cache").exists()


def test_samples_lists_shipped_corpora(run):
    result = run("samples")
    assert result.returncode == 0
    for name in ("tiny-tales", "zh-tales", "synthetic", "python-stdlib"):
        assert f"sample:{name}" in result.stdout


def test_check_refuses_what_train_would_fail_on_one_line_each(run, tmp_path):
    """`check` said OK for a corpus that does not exist; `train` then failed."""
    save_session(Session(name="c"), tmp_path / "c.toml")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01binary")
    (tmp_path / "empty").mkdir()
    (tmp_path / "nothing.txt").write_text("")
    (tmp_path / "afile").write_text("in the way")
    cases = {
        '"/nope.txt"': "data.corpus: /nope.txt: no such file or folder",
        '"blob.bin"': f"data.corpus: {tmp_path / 'blob.bin'}: binary file, not text",
        '"empty"': f"data.corpus: {tmp_path / 'empty'}: folder has no non-empty text files",
        '"sample:nope"': "data.corpus: sample:nope: no such sample",
        '"nothing.txt"': f"data.corpus: {tmp_path / 'nothing.txt'}: file is empty",
    }
    for corpus, line in cases.items():
        result = run("check", "c.toml", "--set", f"data.corpus={corpus}")
        assert result.returncode == 2, corpus
        assert result.stderr.strip().startswith(line), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    # Both problems at once, each on its line; nothing is created.
    result = run("check", "c.toml", "--set", 'data.corpus="/nope.txt"',
                 "--set", 'train.runs_dir="afile/runs"')
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "data.corpus: /nope.txt: no such file or folder",
        f"train.runs_dir: {tmp_path / 'afile' / 'runs'}: cannot be created "
        f"({tmp_path / 'afile'} is not a folder)"]
    assert "Traceback" not in result.stderr
    result = run("check", "c.toml", "--set", 'train.runs_dir="afile"')
    assert result.stderr.strip() == f"train.runs_dir: {tmp_path / 'afile'}: not a folder"


def test_check_ok_for_a_text_folder_and_a_runs_folder_still_to_make(run, tmp_path):
    (tmp_path / "texts" / "sub").mkdir(parents=True)
    (tmp_path / "texts" / "sub" / "a.txt").write_text("some text\n" * 100)  # room for val
    saved(tmp_path, "f", {"data.corpus": "texts", "train.runs_dir": "new/runs"})
    result = run("check", "f.toml")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "new").exists()


def test_help_says_how_to_open_the_app_and_every_command_has_a_description(run):
    result = run("--help")
    assert result.returncode == 0
    assert "llmlab [SESSION.toml] opens the full-screen app" in " ".join(result.stdout.split())
    commands = ("check", "data", "init", "samples", "train", "eval", "sample", "prune",
                "quantize", "runs")
    for command in commands:
        lines = run(command, "--help").stdout.splitlines()
        assert lines[0].startswith(f"usage: llmlab {command} ")
        description = lines[lines.index("") + 1]  # the paragraph after the usage
        assert description and not description.startswith(("positional", "options")), command


def test_data_shows_a_corpus_path_and_tokens_with_brackets_as_they_are(run, tmp_path):
    """A folder named "[draft]" was read as Rich markup: the line said "/tmp/.../ (1 file"."""
    (tmp_path / "[draft]").mkdir()
    (tmp_path / "[draft]" / "a.txt").write_text("[b] [b] [b] cat\n" * 20)
    saved(tmp_path, "m", {"data.corpus": "[draft]", "data.tokenizer": "word"})
    result = run("data", "m.toml", "--preview", "0")
    assert result.returncode == 0, result.stderr
    squeezed = "".join(result.stdout.split())  # (wherever a long tmp path was folded)
    assert "".join(f"{tmp_path / '[draft]'} (1 file".split()) in squeezed
    assert "'[b]'" in result.stdout


def test_data_preview_never_prints_control_characters_from_the_corpus(run, tmp_path):
    (tmp_path / "esc.txt").write_text("hello \x1b[31mred\x1b[0m world\x07\n" * 5)
    save_session(Session(name="e"), tmp_path / "e.toml")
    result = run("data", "e.toml", "--set", 'data.corpus="esc.txt"', "--preview", "60")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "hello ␛[31mred␛[0m world␇" in result.stdout


def _readme_command(marker: str) -> str:
    """The command after `<!-- marker -->` in README.md, as .ci/run reads it."""
    lines = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index(f"<!-- {marker} -->")
    fence = next(i for i in range(start, len(lines)) if lines[i].startswith("```"))
    return lines[fence + 1]


def test_readme_main_command_gets_the_cpu_torch_before_llmlab():
    """`pip install -e . && llmlab` pulled the 5.5 GB CUDA build of torch on a CPU machine."""
    main = _readme_command("main-command")
    steps = [step.strip() for step in main.split("&&")]
    assert steps[0] == "pip install torch --index-url https://download.pytorch.org/whl/cpu"
    assert steps[1:] == ["pip install -e .", "llmlab"]
    assert _readme_command("test-command") == ("pip install -e '.[test]' && "
                                               "python -m pytest -q -n 2")
