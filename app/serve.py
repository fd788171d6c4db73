"""``revocation-service serve``: prepare the data directory and tenants, then run uvicorn."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import structlog
import uvicorn

from app import metrics
from app.asgi import CONFIG_ENV, encode_config
from app.bootstrap import open_services, operator_key_path
from app.config import ADMIN_KEY_ENV, ServiceConfig
from app.delivery_process import DeliveryProcess
from app.directory import TenantView
from app.errors import ConfigError, StoreUnavailable
from app.housekeeping import finish_deletions
from app.http_protocol import HeaderLimitedProtocol
from app.issuers import issuer_path, normalize_issuer
from app.logging import configure_logging
from app.services import Services
from app.tenant_files import load_tenant_files

log = structlog.get_logger("revocation.serve")
WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}  # noqa: S104
"""``--host`` values that listen on every address, and one to reach them from here."""


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
        # before a tenant file declares that id again. MongoDB may still hold the killed
        # process's transaction on that data (until transactionLifetimeLimitSeconds):
        # then start anyway and leave it to housekeeping, which retries it soon.
        try:
            await finish_deletions(services)
        except StoreUnavailable as exc:
            await services.store.ping()  # a store that is really down still stops start-up
            log.warning("tenant_deletions_pending", error=str(exc))
        if config.tenants_dir is not None:
            loaded = await load_tenant_files(services, config.tenants_dir)
            log.info("tenants_loaded", directory=str(config.tenants_dir), tenants=loaded)
            await services.directory.refresh()
            for tenant_id in loaded:
                if (view := services.directory.tenant(tenant_id)) is not None:
                    log.info("tenant_urls", **tenant_urls(view, config))
        log.info("operator_plugins", names=sorted(services.plugins.operator_plugins))
        await log_sandbox_layers(services)
    finally:
        await services.close()
        await services.store.close()
    if not os.environ.get(ADMIN_KEY_ENV):
        # The path only: the key itself never reaches a terminal or a log.
        log.info("operator_admin_key_file", path=str(operator_key_path(config).resolve()))


def listening_url(config: ServiceConfig) -> str:
    """Where a client on this machine reaches the server."""
    host = WILDCARD_HOSTS.get(config.host, config.host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{config.port}"


def tenant_urls(view: TenantView, config: ServiceConfig) -> dict[str, Any]:
    """What ``serve`` tells the operator about a tenant: the URLs it answers on.

    The issuer's own URLs are matched on the request's scheme, Host and path (contract
    section 3), so they reach this server only when the Host a client sends is the
    issuer's, which ``--port`` does not change; the header forms work on any host.
    """
    here = listening_url(config)
    paths = ("/token/revoke", "/token/introspect", "/.well-known/openid-configuration")
    fields: dict[str, Any] = {
        "tenant_id": view.tenant_id,
        "issuer_urls": [view.issuer + p for p in paths],
        "header_urls": [here + p for p in paths],
        "headers": [f"Tenant-ID: {view.tenant_id}", f"Issuer: {view.settings.issuer}"],
    }
    if view.settings.issuer_aliases:
        fields["issuer_aliases"] = list(view.settings.issuer_aliases)
    issuer_origin = view.issuers[0].removesuffix(issuer_path(view.issuers[0]))
    if issuer_origin != normalize_issuer(here):
        fields["note"] = (
            f"this server listens on {here}: the issuer_urls reach it only when a request "
            f"is sent for {issuer_origin} (Host header, or a trusted proxy's "
            "X-Forwarded-Host); elsewhere use the header_urls with one of the headers"
        )
    if not view.settings.enabled:
        fields["note"] = "disabled: every public endpoint of this tenant answers 404"
    return fields


def serve(config: ServiceConfig) -> int:
    configure_logging(json=config.log_json, level=config.log_level)
    try:
        asyncio.run(prepare(config))
    except ConfigError as exc:
        log.error("start_up_failed", error=str(exc), file=exc.source, at=exc.key)
        return 2
    except StoreUnavailable as exc:
        log.error("start_up_failed", error=f"the store is unreachable: {exc}")
        return 3
    os.environ[CONFIG_ENV] = encode_config(config)
    if config.workers > 1:
        metrics.use_multiprocess_dir(config.data_dir / metrics.MULTIPROC_DIR_NAME)
    delivery = DeliveryProcess(config) if config.delivery == "process" else None
    if delivery is not None:
        delivery.start()
    try:
        uvicorn.run(
            "app.asgi:app_factory",
            factory=True,
            host=config.host,
            port=config.port,
            workers=config.workers,
            loop="uvloop",
            http=HeaderLimitedProtocol,  # httptools, with --max-header-bytes and --max-headers
            proxy_headers=False,  # the tenancy middleware trusts --forwarded-allow-ips itself
            server_header=False,
            access_log=False,
            log_config=None,
        )
    finally:
        if delivery is not None:
            delivery.stop()
    return 0
