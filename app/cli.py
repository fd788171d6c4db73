"""The ``revocation-service`` command: ``serve`` and the operator's admin subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.admin import cli as admin_cli


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="revocation-service", description="Multi-tenant OAuth 2.0 token revocation service"
    )
    commands = top.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    add_store_options(serve)
    serve.set_defaults(func=lambda args: 0)
    admin_cli.register(commands, add_store_options)
    return top


def add_store_options(p: argparse.ArgumentParser) -> None:
    """Options every subcommand shares: where the data is."""
    p.add_argument("--data-dir", default="./data", help="embedded store and key files [./data]")
    p.add_argument("--mongodb-uri", default=None, help="use MongoDB (or set MONGODB_URI)")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
