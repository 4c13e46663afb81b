"""Themes from data files: the shipped `themes/*.toml` and the user's own, as Textual themes."""

from __future__ import annotations

import sys
from dataclasses import fields
from importlib import resources
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

from tui.settings import config_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

_COLOR_FIELDS = ("primary", "secondary", "warning", "error", "success", "accent", "foreground",
                 "background", "surface", "panel", "boost")
_FIELDS = {f.name for f in fields(Theme)}
# Variables the app's styles use, with values for themes that do not set them.
VARIABLE_DEFAULTS = {
    "token-a": "#3a3a3a", "token-b": "#005f87",
    # the surprise heatmap, least to most surprising token (tui/widgets/surprise_legend.py)
    "heat-0": "#0000af", "heat-1": "#00005f", "heat-2": "#3a3a3a", "heat-3": "#5f0000",
    "heat-4": "#af0000",
    "plot-train": "#5fafff", "plot-smooth": "#ffffff", "plot-val": "#ffaf5f",
    "plot-acc": "#87d787", "plot-lr": "#af87ff", "plot-marker": "#ff5f5f",
}


class ThemeFileError(Exception):
    pass


def shipped_theme_dir() -> Path:
    return Path(str(resources.files("themes")))


def user_theme_dir() -> Path:
    return config_dir() / "themes"


def _check_color(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ThemeFileError(f"{where}: must be a colour string (got {value!r})")
    try:
        Color.parse(value)
    except ColorParseError:
        raise ThemeFileError(f"{where}: not a colour (got {value!r})") from None
    return value


def load_theme_file(path: Path) -> Theme:
    """One theme file as a Textual Theme; ThemeFileError says what is wrong with it."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ThemeFileError(f"{path}: {e}") from None
    unknown = set(raw) - _FIELDS
    if unknown:
        raise ThemeFileError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    if not isinstance(raw.get("name"), str) or not raw["name"].strip():
        raise ThemeFileError(f"{path}: needs a name = \"...\"")
    if "primary" not in raw:
        raise ThemeFileError(f"{path}: needs a primary colour")
    for key in _COLOR_FIELDS:
        if key in raw:
            _check_color(raw[key], f"{path}: {key}")
    variables = raw.get("variables", {})
    if not isinstance(variables, dict):
        raise ThemeFileError(f"{path}: [variables] must be a table")
    for key, value in variables.items():
        if key.endswith("text-style"):
            continue
        _check_color(value, f"{path}: variables.{key}")
    try:
        return Theme(**raw)
    except (TypeError, ValueError) as e:
        raise ThemeFileError(f"{path}: {e}") from None


def load_themes(dirs: list[Path] | None = None) -> tuple[list[Theme], list[str]]:
    """Every theme in the shipped folder, then the user's (a user theme may replace a shipped
    one of the same name); with one line per file that could not be loaded."""
    dirs = dirs if dirs is not None else [shipped_theme_dir(), user_theme_dir()]
    themes: dict[str, Theme] = {}
    problems = []
    for folder in dirs:
        for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
            try:
                theme = load_theme_file(path)
            except ThemeFileError as e:
                problems.append(str(e))
                continue
            themes[theme.name] = theme
    return list(themes.values()), problems


def theme_color(app, variable: str) -> str:
    """The app's theme variable `variable` as a Rich colour name (the theme's primary if the
    theme lacks it; "default" if it is no colour Rich knows)."""
    value = app.theme_variables.get(variable) or app.theme_variables["primary"]
    try:
        return Color.parse(value).rich_color.name
    except ColorParseError:
        return "default"
