"""Store contract tests, run against every backend in ``backends.BACKENDS``."""
