"""The admin API (contract section 5) and the operations it shares with the CLI."""
