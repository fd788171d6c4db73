"""``revocation-service serve``: prepare the data directory and tenants, then run uvicorn."""

from __future__ import annotations

import asyncio
import os
import sys

import structlog
import uvicorn

from app.asgi import CONFIG_ENV, encode_config
from app.bootstrap import open_services, operator_key_path
from app.config import ADMIN_KEY_ENV, ServiceConfig
from app.errors import ConfigError, StoreUnavailable
from app.housekeeping import finish_deletions
from app.logging import configure_logging
from app.services import Services
from app.tenant_files import load_tenant_files

log = structlog.get_logger("revocation.serve")


async def log_sandbox_layers(services: Services) -> None:
    """What the kernel lets the plugin sandbox apply here, before any tenant code runs."""
    try:
        log.info("plugin_sandbox", layers=await services.plugins.sandbox.layers())
    except Exception as exc:
        # Uploaded plugins will fail (as their tenants' failure mode says), nothing else.
        log.error("plugin_sandbox_unavailable", error=f"{type(exc).__name__}: {exc}")


async def prepare(config: ServiceConfig) -> None:
    """Once, before the workers start: keys, schema, operator key, tenant files."""
    services = await open_services(config)
    try:
        # A deletion a stopped process left half done holds its tenant id: finish it
        # before a tenant file declares that id again.
        await finish_deletions(services)
        if config.tenants_dir is not None:
            loaded = await load_tenant_files(services, config.tenants_dir)
            log.info("tenants_loaded", directory=str(config.tenants_dir), tenants=loaded)
        log.info("operator_plugins", names=sorted(services.plugins.operator_plugins))
        await log_sandbox_layers(services)
    finally:
        await services.close()
        await services.store.close()
    if not os.environ.get(ADMIN_KEY_ENV):
        # The path only: the key itself never reaches a terminal or a log.
        print(f"Operator admin key: {operator_key_path(config).resolve()}", file=sys.stderr)


def serve(config: ServiceConfig) -> int:
    configure_logging(json=config.log_json, level=config.log_level)
    try:
        asyncio.run(prepare(config))
    except ConfigError as exc:
        print(f"revocation-service: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"revocation-service: the store is unreachable: {exc}", file=sys.stderr)
        return 3
    os.environ[CONFIG_ENV] = encode_config(config)
    uvicorn.run(
        "app.asgi:app_factory",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        loop="uvloop",
        http="httptools",
        proxy_headers=False,  # the tenancy middleware trusts --forwarded-allow-ips itself
        server_header=False,
        access_log=False,
        log_config=None,
    )
    return 0
