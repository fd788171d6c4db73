"""Service-wide options: command-line flags and their environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ADMIN_KEY_ENV = "REVOCATION_ADMIN_KEY"
ADMIN_KEY_FILE = "admin-key"
FETCH_ALLOW_PRIVATE_ENV = "REVOCATION_FETCH_ALLOW_PRIVATE"
DEFAULT_MAX_HEADER_BYTES = 32 * 1024
"""As nginx's default (four 8 KiB buffers): ample for Basic, an ``Issuer`` URL and what
proxies add; the service reads no cookie and no bearer token from a header."""
DEFAULT_MAX_HEADERS = 100
DeliveryMode = Literal["process", "workers", "off"]
DELIVERY_MODES: tuple[DeliveryMode, ...] = ("process", "workers", "off")


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    data_dir: Path = Path("./data")
    tenants_dir: Path | None = Path("./tenants")
    plugins_dir: Path | None = Path("./plugins")
    """Operator plugins: one module per ``*.py`` file."""
    mongodb_uri: str | None = None
    mongodb_database: str = "revocation"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1",)
    max_body_bytes: int = 16 * 1024
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    """A request's target and header fields (names and values) together: ``431`` beyond."""
    max_headers: int = DEFAULT_MAX_HEADERS
    """Header fields a request may have: ``431`` beyond."""
    metrics: bool = True
    """``serve --no-metrics``: requests are not counted (``/metrics`` shows only what the
    stores count); a baseline for ``scripts/bench.py --operations``."""
    fetch_allow_private: bool = False
    """Whether URLs that tenants give (key sets) may reach loopback and private addresses."""
    rate_limit_per_client: int = 10
    """Failed client authentications a minute per (tenant, client, source address) where a
    tenant sets no ``rate_limits.per_client_per_minute``; 0: no limit."""
    rate_limit_per_address: int = 100
    """The same per (tenant, source address), for ``rate_limits.per_address_per_minute``."""
    delivery: DeliveryMode = "process"
    """Where ``serve`` pushes Security Event Tokens: ``process``, a ``deliver`` process of
    its own beside the HTTP workers; ``workers``, in every HTTP worker; ``off``, not at
    all (an operator runs ``revocation-service deliver`` elsewhere)."""
    delivery_lease_s: int = 30
    """How long a delivering process holds a receiver without renewing: after a crash,
    delivery to its receivers resumes elsewhere (or after a restart) within this."""
    credential_retention_s: int = 86_400
    """Kept this long after ``exp`` before expired records are purged."""
    log_json: bool | None = None
    """None: JSON lines unless stderr is a terminal."""
    log_level: str = "info"
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_store_commands(cls, args: Any) -> ServiceConfig:
        """The configuration of a command that works on the store directly: the options
        ``app.cli.add_store_options`` defines (``MONGODB_URI`` when no URI is given)."""
        return cls.from_env(
            data_dir=Path(args.data_dir),
            tenants_dir=None,
            plugins_dir=Path(args.plugins_dir),
            mongodb_uri=args.mongodb_uri,
        )

    @classmethod
    def from_env(cls, **overrides: object) -> ServiceConfig:
        """Options as given; ``MONGODB_URI`` when no URI is, and
        ``REVOCATION_FETCH_ALLOW_PRIVATE=1`` when the flag is not given."""
        values = dict(overrides)
        if values.get("fetch_allow_private") is None:
            values["fetch_allow_private"] = os.environ.get(FETCH_ALLOW_PRIVATE_ENV) == "1"
        if not values.get("mongodb_uri") and (uri := os.environ.get("MONGODB_URI")):
            values["mongodb_uri"] = uri
        return cls(**values)  # type: ignore[arg-type]
