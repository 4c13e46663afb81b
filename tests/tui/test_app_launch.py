"""Starting the app from the command line: which command opens it, a bad session file,
no torch in the UI process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from llmlab.cli import _app_session


def test_cli_opens_the_app_only_without_a_subcommand() -> None:
    assert _app_session([]) == (True, None)
    assert _app_session(["my.toml"]) == (True, "my.toml")
    assert _app_session(["check", "x.toml"]) == (False, None)
    assert _app_session(["train"]) == (False, None)
    assert _app_session(["--help"]) == (False, None)



def test_the_ui_process_never_imports_torch() -> None:
    code = ("import sys\n"
            "from tui.app import LlmlabApp\n"
            "from tui.engine_client import EngineClient\n"
            "import tui.panes.dataset, tui.panes.train, tui.panes.sweep\n"
            "import core.sweep_view, optuna, optuna.importance\n"
            "assert 'torch' not in sys.modules, 'torch imported by the UI'\n")
    subprocess.run([sys.executable, "-c", code], check=True)



def test_a_bad_session_file_is_reported_before_the_app_starts(tmp_path: Path, capsys) -> None:
    from llmlab.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nn_layer = 0\nn_heads = 4\n')
    assert main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert "model.n_layer: must be >= 1 (got 0)" in err
    assert "model.n_heads: unknown key (did you mean 'n_head'?)" in err
