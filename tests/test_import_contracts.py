"""The layering rules between the packages, as import-linter checks them (the contracts are in
pyproject.toml: core headless, panes never import the app, no import circle in tui), and the
pane rule import-linter cannot see: panes read app state from their own reactives."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    code = ("from importlinter.cli import lint_imports; "
            "raise SystemExit(lint_imports(no_cache=True, no_logo=True))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_panes_never_reach_into_the_app_by_name() -> None:
    reach = re.compile(r"getattr\(\s*(self\.)?app\b|self\.app\.(show_pane|client|session|"
                       r"model_source|model_loading|document)\b")
    for path in sorted((ROOT / "tui" / "panes").glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not reach.search(line), f"{path.name}:{number}: {line.strip()}"
