"""Running the `llmlab` command as a user would, in a subprocess, and reading its answer."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path


def cli_env(cwd: Path, columns: int = 160, threads: bool = False, cache: bool = True,
            **env_vars: str) -> dict[str, str]:
    """The environment of a `llmlab` subprocess: `columns` wide (Rich uses 80 columns when the
    output is not a terminal), one OpenMP thread unless `threads` (then torch's default), the
    token cache in `cwd/cache` (else the test's own, from conftest)."""
    env = {**os.environ, "COLUMNS": str(columns), **env_vars}
    if cache:
        env["LLMLAB_CACHE_DIR"] = str(cwd / "cache")
    if threads:
        env.pop("OMP_NUM_THREADS", None)
    else:
        env["OMP_NUM_THREADS"] = "1"
    return env


def llmlab(cwd: Path, *args: str, sets: Iterable[str] = (), columns: int = 160,
           threads: bool = False, timeout: float = 120, cache: bool = True,
           memory_cap: int | None = None, **env_vars: str) -> subprocess.CompletedProcess:
    """`llmlab *args` in `cwd`, then `--set FIELD=VALUE` for each of `sets`, its output
    captured (see `cli_env` for the rest). Wide enough by default that no table cell wraps.
    `memory_cap`: an address-space limit in bytes, so that a regression fails fast
    (MemoryError or a kill) instead of eating the machine."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_cap, memory_cap))

    argv = [*args, *(arg for item in sets for arg in ("--set", item))]
    return subprocess.run([sys.executable, "-m", "llmlab", *argv], cwd=cwd,
                          env=cli_env(cwd, columns, threads, cache, **env_vars),
                          capture_output=True, text=True, timeout=timeout,
                          preexec_fn=cap if memory_cap else None)


def ok(result: subprocess.CompletedProcess) -> str:
    """The output of a command that succeeded (exit 0, no traceback)."""
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def one_line_exit_2(result: subprocess.CompletedProcess) -> str:
    """The one line a command that refused its input printed (exit 2, no traceback)."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr[-2000:])
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, lines
    return lines[0]
