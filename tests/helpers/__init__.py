"""Helpers shared by the tests (importable as `helpers` from any test: pytest's `pythonpath`
in pyproject.toml puts tests/ on the path).

- `helpers.sessions`: the one small-session builder of core and app tests.
- `helpers.tui`: waiting with a deadline, reading the screen, typing, scripted engines.
"""
