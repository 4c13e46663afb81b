"""Themes as data files (shipped and a user's) and the app's saved settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.settings import Settings, load_settings, save_settings
from tui.themes import ThemeFileError, load_theme_file, load_themes, shipped_theme_dir


def test_shipped_themes_load() -> None:
    themes, problems = load_themes([shipped_theme_dir()])
    names = {t.name for t in themes}
    assert problems == []
    assert {"llmlab-dark", "llmlab-light", "llmlab-contrast", "llmlab-ansi"} <= names
    assert any(not t.dark for t in themes)



def test_user_theme_is_added_and_a_bad_one_reported(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text('name = "mine"\nprimary = "#ff0000"\n')
    (tmp_path / "broken.toml").write_text('name = "broken"\nprimary = "not-a-colour"\n')
    themes, problems = load_themes([shipped_theme_dir(), tmp_path])
    assert "mine" in {t.name for t in themes}
    assert len(problems) == 1 and "broken.toml" in problems[0]
    with pytest.raises(ThemeFileError, match="needs a primary"):
        (tmp_path / "x.toml").write_text('name = "x"\n')
        load_theme_file(tmp_path / "x.toml")



def test_settings_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    assert load_settings(path) == Settings()
    save_settings(Settings(theme="llmlab-light"), path)
    assert load_settings(path).theme == "llmlab-light"
    path.write_text("theme = [")
    assert load_settings(path) == Settings()
