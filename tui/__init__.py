"""The full-screen Textual app: `llmlab [SESSION.toml]` (see tui/app.py).

Depends on core, never the reverse, and never imports torch: the engine runs in a spawned
process (tui/engine_client.py). Panes are in tui/panes, widgets in tui/widgets, dialogs in
tui/screens, styles in tui/app.tcss, default keys in tui/keymap.toml, themes in themes/.
"""
