"""The embedded store: one SQLite file in WAL mode, written by a group-commit thread."""
