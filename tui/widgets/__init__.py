"""Widgets, one per file; they show state and post messages, never drive the engine."""
