"""The user's settings (the chosen theme), kept in the llmlab config folder.

The folder is `$LLMLAB_CONFIG_DIR`, else `$XDG_CONFIG_HOME/llmlab`, else `~/.config/llmlab`. It
holds `settings.toml`, `keymap.toml` (key overrides) and `themes/` (the user's own themes).
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import tomli_w

from core.fileio import atomic_write_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SETTINGS_FILE = "settings.toml"
DEFAULT_THEME = "llmlab-dark"


def config_dir() -> Path:
    if env := os.environ.get("LLMLAB_CONFIG_DIR"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(xdg) / "llmlab"


@dataclass
class Settings:
    theme: str = DEFAULT_THEME


def load_settings(path: Path | None = None) -> Settings:
    """The saved settings; defaults for a missing or unreadable file or unknown keys."""
    path = path or config_dir() / SETTINGS_FILE
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return Settings()
    known = {f.name: f.type for f in fields(Settings)}
    values = {k: v for k, v in raw.items() if k in known and isinstance(v, str)}
    return Settings(**values)


def save_settings(settings: Settings, path: Path | None = None) -> Path | None:
    """Write the settings atomically; None (and nothing written) if the folder is read-only."""
    path = path or config_dir() / SETTINGS_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, tomli_w.dumps(asdict(settings)))
    except OSError:
        return None
    return path
