"""The keymap: the shipped keys, a user's overrides, and no pane key hiding an app key."""

from __future__ import annotations

from pathlib import Path

from tui.keymap import default_keymap, load_user_keymap


def test_default_keymap_names_every_pane_and_training_key() -> None:
    keymap = default_keymap()
    for binding_id in ("app.dataset", "app.model", "app.train", "app.prune", "app.generate",
                       "app.runs", "app.help", "app.save",
                       "app.open", "train.start", "train.pause", "train.stop",
                       "train.lr_up", "train.lr_down", "train.edit", "train.smoothing",
                       "train.log_scale"):
        assert keymap[binding_id]



def test_user_keymap_overrides_and_reports_unknown_ids(tmp_path: Path) -> None:
    path = tmp_path / "keymap.toml"
    path.write_text('[train]\nstart = "f5"\nbogus = "x"\n[app]\nhelp = 3\n')
    keymap, problems = load_user_keymap(path)
    assert keymap == {"train.start": "f5"}
    assert any("train.bogus" in p for p in problems)
    assert any("app.help" in p for p in problems)
    assert load_user_keymap(tmp_path / "missing.toml") == ({}, [])
    (tmp_path / "bad.toml").write_text("[train\n")
    keymap, problems = load_user_keymap(tmp_path / "bad.toml")
    assert keymap == {} and len(problems) == 1



def test_no_pane_key_hides_a_key_of_the_app() -> None:
    """A pane's binding wins over the app's while the pane has focus: one on an app key
    (a pane switch, start/stop, save) would make that key dead in the pane."""
    from tui.app import LlmlabApp
    from tui.panes.dataset import DatasetPane
    from tui.panes.generate import GeneratePane
    from tui.panes.model import ModelPane
    from tui.panes.prune import PrunePane
    from tui.panes.runs import RunsPane
    from tui.panes.train import TrainPane

    def keys_of(bindings) -> set[str]:
        return {key.strip() for b in bindings for key in b.key.split(",")}

    app_keys = keys_of(LlmlabApp.BINDINGS)
    assert {"d", "m", "t", "p", "g", "r", "s", "x", "space"} <= app_keys
    for pane in (DatasetPane, ModelPane, TrainPane, PrunePane, GeneratePane, RunsPane):
        assert not keys_of(pane.BINDINGS) & app_keys, pane.__name__


def test_every_binding_in_bindings_toml_has_a_key_and_an_action_of_its_pane() -> None:
    """tui/bindings.toml says what a pane's binding does: each names a key in keymap.toml
    under the same id and an action the pane has, and its palette entries come from it."""
    from tui.keymap import binding_table, palette_entries
    from tui.panes import PANES

    panes = {pane.pane_name(): pane for pane in PANES}
    for section, entries in binding_table().items():
        pane = panes[section]
        own = [b.id for b in pane.BINDINGS if b.id.startswith(f"{section}.")]
        assert own == [f"{section}.{name}" for name in entries]
        for name, entry in entries.items():
            assert default_keymap()[f"{section}.{name}"], f"{section}.{name}"
            action = entry["action"].split("(")[0]  # ("nudge(-1)": an action with arguments)
            assert callable(getattr(pane, f"action_{action}", None)), entry
        for action, title, about in palette_entries(section):
            assert title and about and hasattr(pane, f"action_{action}")
