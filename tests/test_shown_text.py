"""Text from files someone else wrote (token strings, run and session names, run.json fields)
never reaches the terminal as control codes: it is shown with its control characters made
visible, in the CLI and in the app; names that would hide a session's runs are refused."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from helpers import cli
from helpers.sessions import tiny_session

from core.engine import Engine
from core.session import Session, load_session, save_session, validate
from core.text import has_control, one_line, visible

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OSC52 = "\x1b]52;c;aGFja2Vk\x07"  # a clipboard write
CLEAR = "\x1b[2J"  # a clear-screen
TITLE = "\x1b]0;owned\x07"  # a window title
RAW = ("\x1b", "\x07", "\x9b", "\u202e")  # ESC, BEL, C1 CSI, a right-to-left override


llmlab = functools.partial(cli.llmlab, columns=200, cache=False)


def assert_no_raw_controls(text: str) -> None:
    for c in RAW:
        assert c not in text, (c, text[-500:])


def test_visible_shows_every_control_character_one_for_one() -> None:
    text = f"a{OSC52}b\x9b1m\u202ec\n\td\x7f"
    assert visible(text) == "a␛]52;c;aGFja2Vk␇b\ufffd1m\ufffdc␊␉d␡"
    assert visible(text, keep="\n\t").endswith("c\n\td␡")
    assert len(visible(text)) == len(text)
    assert one_line("x\r\ny\t\x1b") == "x↵y→␛"
    assert has_control("a\x1bb") and has_control("\u202e") and not has_control("plain é 字")


def test_session_names_that_hide_runs_or_hold_control_codes_are_refused() -> None:
    for name in ("...", ".", "..", ".hidden", "../x", "a/b", f"x{TITLE}", "tab\there"):
        s = Session(name=name)
        problems = validate(s)
        assert any(p.startswith("name:") for p in problems), (name, problems)
        assert_no_raw_controls(" ".join(problems))
    assert validate(Session(name="my.session-2")) == []


def test_a_session_file_named_dots_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text('name = "..."\n')
    result = llmlab(tmp_path, "check", "s.toml")
    assert result.returncode == 2, result.stderr
    assert "name:" in result.stderr and "Traceback" not in result.stderr


def test_llmlab_runs_shows_run_json_fields_without_control_codes(tmp_path: Path) -> None:
    session = tiny_session(tmp_path, max_steps=3)
    assert Engine(session, lambda e: None).train() == "finished"
    (run,) = (tmp_path / "runs" / "t").iterdir()
    info = json.loads((run / "run.json").read_text())
    info.update(session=f"t{TITLE}", name=f"n{CLEAR}", status=f"finished{OSC52}",
                arch="gpt\u202e", created=f"{info['created']}\x9b")
    (run / "run.json").write_text(json.dumps(info))
    for columns in ("200", "30"):  # the table, and the two-line listing of a narrow terminal
        result = llmlab(tmp_path, "runs", "--runs-dir", "runs", columns=columns, timeout=60)
        assert result.returncode == 0, result.stderr
        assert_no_raw_controls(result.stdout + result.stderr)
        assert "␛[2J" in result.stdout


@pytest.fixture(scope="module")
def hostile_word_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose word tokenizer learned only words that are terminal escapes."""
    folder = tmp_path_factory.mktemp("words")
    (folder / "c.txt").write_text(f"{OSC52} {CLEAR} {TITLE}\n" * 200)
    session = tiny_session(folder, max_steps=3)
    session.data.corpus = "c.txt"
    session.data.tokenizer = "word"
    session.generate.prompt = f"{CLEAR} "
    assert validate(session) == []
    save_session(session, folder / "t.toml")
    assert Engine(load_session(folder / "t.toml"), lambda e: None).train() == "finished"
    return folder


def test_llmlab_sample_never_writes_a_token_s_control_codes(hostile_word_run: Path) -> None:
    result = llmlab(hostile_word_run, "sample", "t", "--runs-dir", "runs", "--tokens",
                    "40")
    assert result.returncode == 0, result.stderr
    assert_no_raw_controls(result.stdout + result.stderr)
    assert "␛" in result.stdout  # the tokens are there, shown
    assert result.stdout.endswith("\n")


def test_the_app_shows_tokens_and_run_names_without_control_codes() -> None:
    from tui.widgets.corpus_stats import visible as token_cell
    from tui.widgets.generate_output import GenerateColumn
    from tui.widgets.runs_table import run_name

    assert "\x1b" not in token_cell(OSC52)
    out = GenerateColumn.__new__(GenerateColumn)
    out.state, out.prompt, out.text, out.message = "done", CLEAR, f"{OSC52}\nok", ""
    body = out._body().plain
    assert_no_raw_controls(body)
    assert "\nok" in body

    from core.runs import RunSummary
    from tui.widgets.runs_table import cells

    run = RunSummary(path=Path(f"runs/s{TITLE}/r1"), session=f"s{TITLE}", run_id="r1",
                     created="2026-01-01T00:00:00", arch=f"gpt{CLEAR}", params=10, steps=1,
                     max_steps=2, best_val_loss=None, tokens_per_s=None,
                     status=f"stopped{OSC52}")
    assert_no_raw_controls(run_name(run) + "".join(cells(run)))


def test_an_error_line_quoting_a_folder_name_shows_its_control_codes(tmp_path: Path) -> None:
    (tmp_path / f"d{TITLE}").mkdir()
    save_session(Session(name="e"), tmp_path / "e.toml")
    result = llmlab(tmp_path, "train", "e.toml", "--resume", f"d{TITLE}")
    assert result.returncode == 2, result.stderr
    assert_no_raw_controls(result.stdout + result.stderr)
    assert "d␛]0;owned␇" in result.stderr
