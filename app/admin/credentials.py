"""Registration of issued credentials: one object or a list, all or none.

Fields (contract section 8): ``token`` (write-only), ``type``, ``client_id`` (a registered
client of the tenant), ``exp`` (required), ``sub``, ``grant_id``, ``device_session_id``,
``scope``, ``iat``. A field of list item 3 is reported as ``[3].client_id``; of a single
object as ``client_id``. Tokens are kept only as keyed hashes and never echoed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

from app.admin.fields import (
    MAX_ID,
    MAX_TEXT,
    as_object,
    integer,
    reject_unknown,
    required_string,
    string,
)
from app.admin.tenants import require_tenant
from app.directory import TenantView
from app.errors import FieldError
from app.models import Credential, RegistrationOutcome, Tenant, TokenType
from app.oauth import token_finder
from app.propagation import status_indexes
from app.services import Services
from app.types import TenantId

MAX_BATCH = 10_000
FIELDS = (
    "token",
    "type",
    "client_id",
    "exp",
    "sub",
    "grant_id",
    "device_session_id",
    "scope",
    "iat",
)
LOOKUPS_BEFORE_LISTING = 20
TOKEN_TYPES = tuple(t.value for t in TokenType)


def _items(body: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """``(path prefix, item)`` for a single object or a list of objects."""
    if isinstance(body, list):
        if len(body) > MAX_BATCH:
            raise FieldError("", f"at most {MAX_BATCH} credentials per request")
        return [(f"[{i}].", as_object(item, f"[{i}]")) for i, item in enumerate(body)]
    return [("", as_object(body))]


class CredentialFields(NamedTuple):
    """One credential's fields, checked; the token still in clear."""

    token: str
    type: TokenType
    client_id: str
    exp: int
    sub: str | None
    grant_id: str | None
    device_session_id: str | None
    scope: str | None
    iat: int | None


def check_fields(item: Mapping[str, Any], prefix: str = "") -> CredentialFields:
    """The field rules of one credential (``FieldError`` naming the first wrong one);
    what needs the store (the client exists) is checked by ``register_credentials``."""
    reject_unknown(item, FIELDS, prefix)
    token = required_string(item, "token", prefix, max_length=MAX_TEXT)
    type_ = item.get("type")
    if type_ not in TOKEN_TYPES:
        raise FieldError(f"{prefix}type", f"must be one of: {', '.join(TOKEN_TYPES)}")
    exp = integer(item, "exp", prefix, required=True)
    assert exp is not None
    return CredentialFields(
        token=token,
        type=TokenType(type_),
        client_id=required_string(item, "client_id", prefix, max_length=MAX_ID),
        exp=exp,
        sub=string(item, "sub", prefix, max_length=MAX_ID),
        grant_id=string(item, "grant_id", prefix, max_length=MAX_ID),
        device_session_id=string(item, "device_session_id", prefix, max_length=MAX_ID),
        scope=string(item, "scope", prefix, max_length=MAX_TEXT, empty=True),
        iat=integer(item, "iat", prefix),
    )


def _credential(
    services: Services, tenant: Tenant, item: Mapping[str, Any], prefix: str
) -> Credential:
    f = check_fields(item, prefix)
    return Credential(
        tenant_id=tenant.tenant_id,
        token_hash=services.keys.token_hash(tenant.tenant_id, tenant.key_salt, f.token),
        type=f.type,
        client_id=f.client_id,
        exp=f.exp,
        sub=f.sub,
        grant_id=f.grant_id,
        device_session_id=f.device_session_id,
        scope=f.scope,
        iat=f.iat,
    )


async def register_credentials(
    services: Services, tenant_id: TenantId, body: Any
) -> RegistrationOutcome:
    """Validate every item, check every ``client_id``, then register all in one write.

    Where the tenant has a Token Status List, each credential gets an index first, and
    the outcome carries each one's ``status`` claim."""
    tenant = await require_tenant(services, tenant_id)
    items = _items(body)
    credentials = [_credential(services, tenant, item, prefix) for prefix, item in items]
    registered = await _registered_clients(services, tenant_id, {c.client_id for c in credentials})
    for (prefix, _), credential in zip(items, credentials, strict=True):
        if credential.client_id not in registered:
            raise FieldError(f"{prefix}client_id", "is not a registered client of this tenant")
    if len(services.keys.keys) > 1:
        # After a master-key rotation a token stored under an older key keeps its hash.
        tokens = [item["token"] for _, item in items]
        hashes = await token_finder.registration_hashes(services, tenant, tokens)
        credentials = [
            dataclasses.replace(c, token_hash=h) for c, h in zip(credentials, hashes, strict=True)
        ]
    view = TenantView.of(tenant)
    if not view.settings.status_list_enabled:
        return await services.store.register_credentials(tenant_id, credentials)
    credentials = await status_indexes.assign(services, view, credentials)
    outcome = await services.store.register_credentials(tenant_id, credentials)
    return await status_indexes.with_references(services, view, credentials, outcome)


async def _registered_clients(
    services: Services, tenant_id: TenantId, client_ids: set[str]
) -> set[str]:
    """Which of ``client_ids`` are registered: one lookup each, or one listing for many."""
    if len(client_ids) > LOOKUPS_BEFORE_LISTING:
        return {c.client_id for c in await services.store.list_clients(tenant_id)}
    return {c for c in client_ids if await services.store.get_client(tenant_id, c) is not None}
