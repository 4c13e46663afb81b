"""Running the `llmlab` command as a user would, in a subprocess, and reading its answer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def llmlab(cwd: Path, *args: str, columns: int = 160, threads: bool = False,
           timeout: float = 120, **env_vars: str) -> subprocess.CompletedProcess:
    """Wide enough by default that no table cell wraps (Rich uses 80 columns when the output
    is not a terminal). One OpenMP thread unless `threads` (then torch's default)."""
    env = {**os.environ, "LLMLAB_CACHE_DIR": str(cwd / "cache"), "COLUMNS": str(columns),
           **env_vars}
    if threads:
        env.pop("OMP_NUM_THREADS", None)
    else:
        env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-m", "llmlab", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> str:
    """The output of a command that succeeded (exit 0, no traceback)."""
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout
