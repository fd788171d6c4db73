"""Persisted grant records (Connect2id's authorisation records): ``client_id``, ``sub``,
``scope``. A grant names a registered client; its ``grant_id`` may repeat the path."""

from __future__ import annotations

from typing import Any

from app.admin.fields import (
    MAX_ID,
    MAX_TEXT,
    as_object,
    identifier,
    reject_unknown,
    required_string,
    same_as_path,
    string,
)
from app.admin.tenants import require_tenant
from app.errors import FieldError, NotFound
from app.models import Grant
from app.services import Services
from app.types import TenantId

FIELDS = ("grant_id", "client_id", "sub", "scope")


async def put_grant(
    services: Services, tenant_id: TenantId, grant_id: str, body: Any
) -> tuple[Grant, bool]:
    """Create or replace; returns the record and whether it was created."""
    await require_tenant(services, tenant_id)
    identifier(grant_id, "grant_id")
    body = as_object(body)
    reject_unknown(body, FIELDS)
    same_as_path(body, "grant_id", grant_id)
    client_id = required_string(body, "client_id", max_length=MAX_ID)
    grant = Grant(
        tenant_id=tenant_id,
        grant_id=grant_id,
        client_id=client_id,
        sub=required_string(body, "sub", max_length=MAX_ID),
        scope=string(body, "scope", max_length=MAX_TEXT, empty=True),
        updated_at=services.clock(),
    )
    if await services.store.get_client(tenant_id, client_id) is None:
        raise FieldError("client_id", "is not a registered client of this tenant")
    existing = await services.store.get_grant(tenant_id, grant_id)
    await services.store.put_grant(grant)
    return grant, existing is None


async def get_grant(services: Services, tenant_id: TenantId, grant_id: str) -> Grant:
    await require_tenant(services, tenant_id)
    grant = await services.store.get_grant(tenant_id, grant_id)
    if grant is None:
        raise NotFound("no such grant")
    return grant
