"""Tenant operations: create or replace, read, merge-patch, delete, list.

A tenant keeps only the settings that were set (``Tenant.settings``); responses show the
effective settings. ``PUT`` replaces those settings and keeps the tenant's key salt,
clients, credentials and admin keys; ``PATCH`` is an RFC 7396 merge patch of the explicit
settings (``null`` resets a setting to its default), validated as a whole afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from app.admin.fields import as_object, same_as_path
from app.errors import FieldError, NotFound
from app.issuers import normalize_issuer
from app.models import Tenant
from app.rfc7396 import merge_patch
from app.services import Services
from app.settings import TENANT_ID_RE, validate
from app.types import JSON, TenantId

KEY_SALT_BYTES = 16


def check_tenant_id(tenant_id: str) -> TenantId:
    if not TENANT_ID_RE.match(tenant_id):
        raise FieldError("tenant_id", "must match ^[a-z0-9][a-z0-9-]{0,62}$")
    return tenant_id


async def require_tenant(services: Services, tenant_id: TenantId) -> Tenant:
    """The stored tenant, or ``404``."""
    tenant = await services.store.get_tenant(tenant_id) if TENANT_ID_RE.match(tenant_id) else None
    if tenant is None:
        raise NotFound("no such tenant")
    return tenant


def _settings_of(tenant_id: TenantId, body: Any) -> JSON:
    """Validated explicit settings from a request body (``tenant_id`` may repeat the path)."""
    body = dict(as_object(body))
    same_as_path(body, "tenant_id", tenant_id)
    body.pop("tenant_id", None)
    return validate(body)


def issuers_of(settings: Mapping[str, Any]) -> list[str]:
    """Normalised issuer and aliases, as ``Store.put_tenant`` indexes them."""
    return [normalize_issuer(u) for u in (settings["issuer"], *settings.get("issuer_aliases", []))]


def tenant_record(tenant_id: TenantId, settings: JSON, existing: Tenant | None, now: int) -> Tenant:
    """The record to store: a new tenant gets a fresh key salt, an existing one keeps its
    salt (its stored hashes stay valid) and its creation time."""
    return Tenant(
        tenant_id=tenant_id,
        settings=settings,
        key_salt=existing.key_salt if existing else os.urandom(KEY_SALT_BYTES),
        created_at=existing.created_at if existing else now,
        updated_at=now,
    )


async def store_tenant(
    services: Services, tenant_id: TenantId, settings: JSON, existing: Tenant | None
) -> Tenant:
    record = tenant_record(tenant_id, settings, existing, services.clock())
    try:
        return await services.store.put_tenant(record, issuers_of(settings))
    finally:
        services.directory.invalidate()


async def put_tenant(services: Services, tenant_id: TenantId, body: Any) -> tuple[Tenant, bool]:
    """Create or replace; returns the stored tenant and whether it was created."""
    check_tenant_id(tenant_id)
    settings = await services.plugins.check_enabled(tenant_id, _settings_of(tenant_id, body))
    existing = await services.store.get_tenant(tenant_id)
    return await store_tenant(services, tenant_id, settings, existing), existing is None


async def patch_tenant(services: Services, tenant_id: TenantId, patch: Any) -> Tenant:
    """Merge ``patch`` into the explicit settings (RFC 7396), then validate the result."""
    existing = await require_tenant(services, tenant_id)
    patch = dict(as_object(patch))
    same_as_path(patch, "tenant_id", tenant_id)
    patch.pop("tenant_id", None)
    settings = validate(merge_patch(existing.settings, patch))
    settings = await services.plugins.check_enabled(tenant_id, settings)
    return await store_tenant(services, tenant_id, settings, existing)


async def delete_tenant(services: Services, tenant_id: TenantId) -> None:
    """Delete the tenant with all its data, admin keys included."""
    try:
        found = TENANT_ID_RE.match(tenant_id) and await services.store.delete_tenant(tenant_id)
    finally:
        services.directory.invalidate()
    if not found:
        raise NotFound("no such tenant")


async def list_tenants(services: Services) -> list[Tenant]:
    return sorted(await services.store.list_tenants(), key=lambda t: t.tenant_id)
