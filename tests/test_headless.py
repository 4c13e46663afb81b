"""The layering rule: the engine is usable without the UI, and the CLI starts fast."""

from __future__ import annotations

import subprocess
import sys

UI_MODULES = ("textual", "plotext", "tui")


def loaded_after(code: str) -> set[str]:
    """Top-level modules imported by `code` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    return {name.split(".")[0] for name in out}


def test_import_core_pulls_in_no_ui_and_no_torch():
    loaded = loaded_after("import core")
    assert not loaded & set(UI_MODULES)
    assert "torch" not in loaded


def test_every_core_module_is_headless():
    code = "\n".join(f"import core.{m}" for m in (
        "session", "corpus", "tokenizers", "dataset", "stats", "samples", "models"))
    assert not loaded_after(code) & set(UI_MODULES)


def test_llmlab_help_does_not_import_torch_or_numpy():
    loaded = loaded_after(
        "from llmlab.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert "torch" not in loaded and "numpy" not in loaded
