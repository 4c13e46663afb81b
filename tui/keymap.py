"""Key bindings as data: `tui/keymap.toml` holds the defaults, a user file overrides them.

Every binding in the app is made with `bind(id, action, description)`, which takes its key
from the default keymap, so the TOML file is the one place keys are written down. At start the
app reads the user's keymap (same ids; see `user_keymap_path`) and applies it with Textual's
`App.set_keymap`, which rebinds by id.

What a binding does and says (its action, footer label and help text) is in
`tui/bindings.toml`, a table per pane in the order its help lists them: a pane's BINDINGS are
`bindings("<section>")`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from textual.binding import Binding

from tui.settings import config_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

DEFAULT_KEYMAP = Path(__file__).with_name("keymap.toml")
BINDINGS_FILE = Path(__file__).with_name("bindings.toml")
KEYMAP_FILE = "keymap.toml"


def _flatten(table: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


@cache
def default_keymap() -> dict[str, str]:
    """Binding id -> keys, from tui/keymap.toml."""
    with open(DEFAULT_KEYMAP, "rb") as f:
        return _flatten(tomllib.load(f))


def keys(binding_id: str, default: str | None = None) -> str:
    """The default keys of a binding: tui/keymap.toml's, else `default` (a pane's KEY)."""
    if default is not None:
        return default_keymap().get(binding_id, default)
    return default_keymap()[binding_id]


def current_keys(app: Any, binding_id: str) -> set[str]:
    """The keys of a binding as the user's keymap has them now, in Textual's long names
    ("plus", "minus"): for a widget that must tell a bound key from a typed character."""
    from textual.keys import _character_to_key

    key = (getattr(app, "_keymap", None) or {}).get(binding_id, keys(binding_id))
    return {_character_to_key(k.strip()) if len(k.strip()) == 1 else k.strip()
            for k in key.split(",") if k.strip()}


def key_display(app: Any, binding_id: str) -> str:
    """The first key of a binding as the user's keymap has it, as the footer shows it
    ("^r", "⏎", "h"): for hints like "h: surprise heatmap"."""
    from textual.binding import Binding

    key = (getattr(app, "_keymap", None) or {}).get(binding_id, keys(binding_id))
    return app.get_key_display(Binding(key.split(",")[0], ""))


def bind(binding_id: str, action: str, description: str = "", *, show: bool = True,
         priority: bool = False, key_display: str | None = None,
         group: str | None = None, help: str = "", default: str | None = None) -> Binding:
    """A Binding whose key comes from the default keymap and that a user keymap can move;
    bindings of one `group` share one label in the footer; `help` is the longer text of the
    help screen (and the footer's tooltip); `default`: the key when the keymap has none."""
    return Binding(keys(binding_id, default), action, description, show=show, priority=priority,
                   key_display=key_display, id=binding_id, tooltip=help,
                   group=Binding.Group(group, compact=True) if group else None)


@cache
def binding_table() -> dict[str, dict[str, dict[str, Any]]]:
    """Section -> binding name -> what it does and says (`action`, `label`, `help`, `show`),
    from tui/bindings.toml, in the file's order."""
    with open(BINDINGS_FILE, "rb") as f:
        return tomllib.load(f)


def bindings(section: str, **values: Any) -> list[Binding]:
    """The bindings of `section` (a pane's: "runs"), in tui/bindings.toml's order: binding id
    `<section>.<name>`, its key from the keymap; `values` fill the {names} of a help text."""
    return [bind(f"{section}.{name}", entry["action"], entry.get("label", ""),
                 show=entry.get("show", True), help=entry.get("help", "").format(**values))
            for name, entry in binding_table()[section].items()]


def palette_entries(section: str) -> list[tuple[str, str, str]]:
    """(action, title, help) of each binding of `section` that is also a palette command,
    in tui/bindings.toml's order."""
    return [(entry["action"], entry["palette"], entry.get("palette_help", ""))
            for entry in binding_table()[section].values() if "palette" in entry]


def user_keymap_path() -> Path:
    return config_dir() / KEYMAP_FILE


def load_user_keymap(path: Path | None = None,
                     known: Iterable[str] = ()) -> tuple[dict[str, str], list[str]]:
    """The user's overrides (binding id -> keys) and a line for each problem found.

    A missing file is no problem; a broken one is ignored as a whole (with its error), and an
    unknown id or a value that is not a string is skipped (with a line naming it). `known`:
    ids besides the default keymap's (a pane's `app.<name>`).
    """
    path = path or user_keymap_path()
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        return {}, []
    except (OSError, tomllib.TOMLDecodeError) as e:
        return {}, [f"{path}: {e}"]
    known = {*default_keymap(), *known}
    keymap: dict[str, str] = {}
    problems = []
    for binding_id, value in _flatten(raw).items():
        if binding_id not in known:
            problems.append(f"{path}: unknown binding id {binding_id!r}")
        elif not isinstance(value, str) or not value.strip():
            problems.append(f"{path}: {binding_id} must be a key string like \"ctrl+r\"")
        else:
            keymap[binding_id] = value.replace(" ", "")
    return keymap, problems
