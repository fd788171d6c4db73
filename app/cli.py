"""The ``revocation-service`` command: ``serve`` and the operator's admin subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from app.admin import cli as admin_cli
from app.config import ServiceConfig
from app.logging import LEVELS


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="revocation-service", description="Multi-tenant OAuth 2.0 token revocation service"
    )
    commands = top.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    add_store_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="[127.0.0.1]")
    serve.add_argument("--port", type=int, default=8000, help="[8000]")
    serve.add_argument("--tenants", default="./tenants", help="tenant files (*.toml) [./tenants]")
    serve.add_argument("--no-tenants", action="store_true", help="load no tenant files")
    serve.add_argument("--workers", type=int, default=1, help="worker processes [1]")
    serve.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        help="proxies whose X-Forwarded-* headers count, comma-separated, or * [127.0.0.1]",
    )
    serve.add_argument(
        "--fetch-allow-private",
        action="store_true",
        help="let key-set URLs reach loopback and private addresses (or set "
        "REVOCATION_FETCH_ALLOW_PRIVATE=1) [refused]",
    )
    serve.add_argument("--max-body-bytes", type=int, default=16 * 1024, help="[16384]")
    serve.add_argument(
        "--log-json",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="JSON log lines [when not on a terminal]",
    )
    serve.add_argument("--log-level", default="info", choices=tuple(LEVELS))
    serve.set_defaults(func=_serve)
    admin_cli.register(commands, add_store_options)
    return top


def add_store_options(p: argparse.ArgumentParser) -> None:
    """Options every subcommand shares: where the data is."""
    p.add_argument("--data-dir", default="./data", help="embedded store and key files [./data]")
    p.add_argument("--mongodb-uri", default=None, help="use MongoDB (or set MONGODB_URI)")
    p.add_argument("--plugins-dir", default="./plugins", help="operator plugins (*.py) [./plugins]")


def _serve(args: argparse.Namespace) -> int:
    from app.serve import serve

    config = ServiceConfig.from_env(
        data_dir=Path(args.data_dir),
        tenants_dir=None if args.no_tenants else Path(args.tenants),
        plugins_dir=Path(args.plugins_dir),
        mongodb_uri=args.mongodb_uri,
        host=args.host,
        port=args.port,
        workers=args.workers,
        forwarded_allow_ips=tuple(ip.strip() for ip in args.forwarded_allow_ips.split(",")),
        max_body_bytes=args.max_body_bytes,
        fetch_allow_private=args.fetch_allow_private or None,
        log_json=args.log_json,
        log_level=args.log_level,
    )
    return serve(config)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
