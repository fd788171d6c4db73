"""The ``revocation-service`` command: ``serve`` and the operator's admin subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from app.admin import cli as admin_cli
from app.config import (
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_HEADERS,
    DELIVERY_MODES,
    ServiceConfig,
)
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
        "--no-metrics",
        action="store_true",
        help="do not count requests for /metrics (a baseline for benchmarks) [counted]",
    )
    serve.add_argument(
        "--fetch-allow-private",
        action="store_true",
        help="let key-set URLs reach loopback and private addresses (or set "
        "REVOCATION_FETCH_ALLOW_PRIVATE=1) [refused]",
    )
    serve.add_argument(
        "--delivery",
        choices=DELIVERY_MODES,
        default="process",
        help="push Security Event Tokens from a process of its own at a lower CPU priority, "
        "from every HTTP worker, or not at all (run `deliver` elsewhere) [process]",
    )
    add_lease_option(serve)
    serve.add_argument("--max-body-bytes", type=int, default=16 * 1024, help="[16384]")
    serve.add_argument(
        "--max-header-bytes",
        type=_positive,
        default=DEFAULT_MAX_HEADER_BYTES,
        metavar="N",
        help="a request's target and header fields (names and values) together; 431 beyond "
        f"[{DEFAULT_MAX_HEADER_BYTES}]",
    )
    serve.add_argument(
        "--max-headers",
        type=_positive,
        default=DEFAULT_MAX_HEADERS,
        metavar="N",
        help=f"header fields a request may have; 431 beyond [{DEFAULT_MAX_HEADERS}]",
    )
    serve.add_argument(
        "--rate-limit-per-client",
        type=_per_minute,
        default=10,
        metavar="N",
        help="failed client authentications a minute per tenant, client and source address, "
        "where a tenant sets no rate_limits.per_client_per_minute; 0: no limit [10]",
    )
    serve.add_argument(
        "--rate-limit-per-address",
        type=_per_minute,
        default=100,
        metavar="N",
        help="failed client authentications a minute per tenant and source address, where a "
        "tenant sets no rate_limits.per_address_per_minute; 0: no limit [100]",
    )
    add_log_options(serve)
    serve.set_defaults(func=_serve)
    deliver = commands.add_parser(
        "deliver", help="push Security Event Tokens to the receivers until stopped"
    )
    add_store_options(deliver)
    deliver.add_argument(
        "--fetch-allow-private",
        action="store_true",
        help="let receiver URLs reach loopback and private addresses (or set "
        "REVOCATION_FETCH_ALLOW_PRIVATE=1) [refused]",
    )
    deliver.add_argument(
        "--nice", type=int, default=0, help="lower the CPU priority by N (serve: 19) [0]"
    )
    add_lease_option(deliver)
    deliver.add_argument(
        "--parent-pid",
        type=int,
        default=None,
        metavar="PID",
        help="stop when that process ends (serve passes its own)",
    )
    add_log_options(deliver)
    deliver.set_defaults(func=_deliver)
    admin_cli.register(commands, add_store_options)
    top.epilog = "commands:\n" + command_list(commands)
    top.formatter_class = argparse.RawDescriptionHelpFormatter
    return top


def command_list(commands: argparse._SubParsersAction[Any]) -> str:
    """Every command, subcommands spelt out, with its arguments and help: one a line."""
    rows = list(_commands(commands, ""))
    width = max(len(usage) for usage, _ in rows) + 2
    return "\n".join(f"  {usage:<{width}}{help}" for usage, help in rows)


def _commands(commands: argparse._SubParsersAction[Any], prefix: str) -> Iterator[tuple[str, str]]:
    helps = {action.dest: action.help or "" for action in commands._choices_actions}
    for name, sub in commands.choices.items():
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            yield from _commands(nested[0], f"{prefix}{name} ")
            continue
        words = [prefix + name]
        for action in sub._get_positional_actions():
            word = str(action.metavar or action.dest).upper()
            words.append(f"[{word}]" if action.nargs == "?" else word)
        yield " ".join(words), helps.get(name, "")


def add_lease_option(p: argparse.ArgumentParser) -> None:
    """``--delivery-lease-s`` of the processes that may deliver (``serve``, ``deliver``)."""
    p.add_argument(
        "--delivery-lease-s",
        type=_positive,
        default=30,
        metavar="S",
        help="a delivering process's hold on a receiver; after a crash, delivery to it "
        "resumes within this [30]",
    )


def add_log_options(p: argparse.ArgumentParser) -> None:
    """The log format and level of the long-running commands (``serve``, ``deliver``)."""
    p.add_argument(
        "--log-json",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="JSON log lines [when not on a terminal]",
    )
    p.add_argument("--log-level", default="info", choices=tuple(LEVELS))


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
        max_header_bytes=args.max_header_bytes,
        max_headers=args.max_headers,
        rate_limit_per_client=args.rate_limit_per_client,
        rate_limit_per_address=args.rate_limit_per_address,
        fetch_allow_private=args.fetch_allow_private or None,
        delivery=args.delivery,
        delivery_lease_s=args.delivery_lease_s,
        metrics=not args.no_metrics,
        log_json=args.log_json,
        log_level=args.log_level,
    )
    return serve(config)


def _deliver(args: argparse.Namespace) -> int:
    from app.delivery_process import deliver

    config = ServiceConfig.from_env(
        data_dir=Path(args.data_dir),
        tenants_dir=None,
        plugins_dir=Path(args.plugins_dir),
        mongodb_uri=args.mongodb_uri,
        fetch_allow_private=args.fetch_allow_private or None,
        delivery_lease_s=args.delivery_lease_s,
        log_json=args.log_json,
        log_level=args.log_level,
    )
    return deliver(config, nice=args.nice, parent_pid=args.parent_pid)


def _positive(text: str) -> int:
    """A whole number from 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _per_minute(text: str) -> int:
    """A limit a minute: a whole number from 0 (no limit) to 1,000,000."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError("must be between 0 (no limit) and 1000000")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
