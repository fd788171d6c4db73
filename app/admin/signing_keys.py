"""A tenant's own signing keys in the admin API and the CLI: list, rotate.

The keys themselves are ``app.propagation.signing_keys``. A listing shows every kept
key, current first, with its public JWK only: never the private key, sealed or not.
"""

from __future__ import annotations

from typing import Any

from app.admin.fields import as_object, reject_unknown
from app.admin.tenants import require_tenant
from app.errors import FieldError
from app.models import SigningKey
from app.propagation import jwk
from app.propagation import signing_keys as keys
from app.services import Services
from app.types import JSON, TenantId


async def list_keys(services: Services, tenant_id: TenantId) -> list[SigningKey]:
    await require_tenant(services, tenant_id)
    return await services.store.list_signing_keys(tenant_id)


def parse_overlap(body: Any) -> int:
    """``{"overlap_s": N}`` (optional; no body is ``{}``): how long the key that a
    rotation replaces stays published."""
    fields = as_object(body)
    reject_unknown(fields, ("overlap_s",))
    value = fields.get("overlap_s")
    if value is None:
        return keys.DEFAULT_OVERLAP_S
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError("overlap_s", "must be a whole number of seconds")
    if not 0 <= value <= keys.MAX_OVERLAP_S:
        raise FieldError("overlap_s", f"must be from 0 to {keys.MAX_OVERLAP_S}")
    return value


async def rotate(services: Services, tenant_id: TenantId, body: Any) -> list[SigningKey]:
    """A new current key; the tenant's keys afterwards."""
    overlap_s = parse_overlap(body)
    await require_tenant(services, tenant_id)
    return await keys.rotate(services, tenant_id, services.clock(), overlap_s)


def key_json(key: SigningKey) -> JSON:
    return {
        "kid": key.kid,
        "alg": key.alg,
        "public_jwk": jwk.published(key.public_jwk),
        "created_at": key.created_at,
        "retire_at": key.retire_at,
        "current": key.retire_at is None,
    }


def keys_json(found: list[SigningKey]) -> JSON:
    return {"keys": [key_json(k) for k in found]}
