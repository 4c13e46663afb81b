"""The full-screen Textual app (built in a later issue; depends on core, never the reverse)."""
