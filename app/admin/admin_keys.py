"""Tenant admin keys: created by the operator, shown once, stored as a keyed hash."""

from __future__ import annotations

from app.admin.auth import new_tenant_key
from app.admin.tenants import require_tenant
from app.errors import NotFound
from app.models import AdminKey
from app.services import Services
from app.types import JSON, TenantId


async def create_admin_key(services: Services, tenant_id: TenantId) -> JSON:
    """``{"key_id", "key"}``: the only time the key is seen."""
    await require_tenant(services, tenant_id)
    key_id, key = new_tenant_key(tenant_id)
    record = AdminKey(tenant_id, key_id, services.keys.admin_key_hash(key), services.clock())
    await services.store.add_admin_key(record)
    return {"key_id": key_id, "key": key}


async def list_admin_keys(services: Services, tenant_id: TenantId) -> list[AdminKey]:
    await require_tenant(services, tenant_id)
    return sorted(
        await services.store.list_admin_keys(tenant_id), key=lambda k: (k.created_at, k.key_id)
    )


async def delete_admin_key(services: Services, tenant_id: TenantId, key_id: str) -> None:
    await require_tenant(services, tenant_id)
    if not await services.store.delete_admin_key(tenant_id, key_id):
        raise NotFound("no such admin key")
