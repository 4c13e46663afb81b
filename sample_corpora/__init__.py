"""Corpora and the default session shipped with llmlab (see core.samples)."""
