"""The `llmlab` command line (headless; the full-screen app lives in `tui`)."""
