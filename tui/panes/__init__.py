"""The app's panes, one per file: Dataset, Model, Train (Prune, Generate, Runs to come)."""
