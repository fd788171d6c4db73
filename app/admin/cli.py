"""Operator subcommands (``tenant``, ``client``, ``credential``, ``events``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def register(
    commands: argparse._SubParsersAction[Any],
    add_store_options: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the admin subcommands to ``commands``; each sets ``func(args) -> exit code``."""
