"""Colour themes as data files (`*.toml`), loaded by the app (see tui/themes.py).

Each file defines one Textual theme: `name`, `dark`, the base colours (`primary`, `secondary`,
`accent`, `success`, `warning`, `error`, `foreground`, `background`, `surface`, `panel`) and a
`[variables]` table for finer ones (`token-a`/`token-b` for the token preview, `plot-*` for
the plots). Users add their own in ~/.config/llmlab/themes/.
"""
