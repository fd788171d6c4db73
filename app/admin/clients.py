"""Client operations: register or replace, read, list, delete.

Fields (contract section 8): ``type``, ``token_endpoint_auth_method``, ``client_secret``
(write-only), ``jwks`` or ``jwks_uri``, ``scope``, ``enabled``; ``client_id`` may repeat
the path. ``type`` defaults from the method (``none`` → public, else confidential); the
method defaults from the type (``client_secret_basic`` / ``none``).

Secrets: ``client_secret_basic``/``_post`` keep a keyed hash; ``client_secret_jwt`` keeps
the hash and an AES-GCM sealed copy (HMAC assertions need the secret in clear). A
secret-based client registered without ``client_secret`` gets a generated one, returned
once. Replacing a client without ``client_secret`` keeps its current secret when it suits
the (new) method; a switch to ``client_secret_jwt`` from a hash-only secret generates one.

Keys (``private_key_jwt`` only): ``jwks`` must be a set of public signature keys that
``app.key_sets`` can use; ``jwks_uri`` an absolute http(s) URL, fetched only when an
assertion is verified, under the tenant's host rules.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.admin.fields import (
    MAX_ID,
    as_object,
    boolean,
    reject_unknown,
    same_as_path,
    string,
)
from app.admin.tenants import require_tenant
from app.auth_methods import KEY_METHODS, SEALED_SECRET_METHODS, SECRET_METHODS, AuthMethod
from app.errors import FieldError, NotFound
from app.key_sets import check_public as check_public_key_set
from app.keys import KeyRing
from app.models import Client, ClientType, Tenant
from app.services import Services
from app.types import JSON, ClientId, TenantId

FIELDS = (
    "client_id",
    "type",
    "token_endpoint_auth_method",
    "client_secret",
    "jwks",
    "jwks_uri",
    "scope",
    "enabled",
)
CLIENT_TYPES = tuple(t.value for t in ClientType)
METHODS = tuple(AuthMethod)
MAX_SECRET = 1024
SCOPE_TOKEN_RE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
"""RFC 6749 section 3.3 scope-token."""


@dataclass(frozen=True, slots=True)
class ClientWrite:
    client: Client
    created: bool
    generated_secret: str | None = None
    """A secret the service generated: shown in this response only."""


def check_client_id(client_id: str) -> ClientId:
    if not client_id:
        raise FieldError("client_id", "must not be empty")
    if len(client_id) > MAX_ID:
        raise FieldError("client_id", f"must be at most {MAX_ID} characters")
    return client_id


def _type_and_method(body: Mapping[str, Any]) -> tuple[ClientType, AuthMethod]:
    type_ = body.get("type")
    given = body.get("token_endpoint_auth_method")
    if type_ is not None and type_ not in CLIENT_TYPES:
        raise FieldError("type", "must be confidential or public")
    if given is not None and given not in METHODS:
        raise FieldError("token_endpoint_auth_method", f"must be one of: {', '.join(METHODS)}")
    method = None if given is None else AuthMethod(given)
    if type_ is None:
        type_ = ClientType.PUBLIC if method is AuthMethod.NONE else ClientType.CONFIDENTIAL
    client_type = ClientType(type_)
    if method is None:
        public = client_type is ClientType.PUBLIC
        method = AuthMethod.NONE if public else AuthMethod.CLIENT_SECRET_BASIC
    if client_type is ClientType.PUBLIC and method is not AuthMethod.NONE:
        raise FieldError("token_endpoint_auth_method", "a public client uses none")
    if client_type is ClientType.CONFIDENTIAL and method is AuthMethod.NONE:
        raise FieldError("token_endpoint_auth_method", "a confidential client cannot use none")
    return client_type, method


def _scope(body: Mapping[str, Any]) -> frozenset[str]:
    scope = string(body, "scope", empty=True)
    tokens = (scope or "").split(" ")
    if any(t and not SCOPE_TOKEN_RE.match(t) for t in tokens):
        raise FieldError("scope", "must be space-separated scope tokens")
    return frozenset(t for t in tokens if t)


def _keys(body: Mapping[str, Any], method: AuthMethod) -> tuple[JSON | None, str | None]:
    jwks = body.get("jwks")
    jwks_uri = string(body, "jwks_uri")
    if method not in KEY_METHODS:
        if jwks is not None or jwks_uri is not None:
            raise FieldError("jwks" if jwks is not None else "jwks_uri", "only for private_key_jwt")
        return None, None
    if jwks is not None and jwks_uri is not None:
        raise FieldError("jwks_uri", "give jwks or jwks_uri, not both")
    if jwks is None and jwks_uri is None:
        raise FieldError("jwks", "private_key_jwt needs jwks or jwks_uri")
    if jwks is not None:
        check_public_key_set(jwks, "jwks")
    if jwks_uri is not None:
        parts = urlsplit(jwks_uri)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise FieldError("jwks_uri", "must be an absolute https (or http) URL")
    return jwks, jwks_uri


def client_from_json(
    keys: KeyRing,
    tenant: Tenant,
    client_id: ClientId,
    body: Any,
    *,
    existing: Client | None,
    now: int,
) -> tuple[Client, str | None]:
    """Validate ``body`` and build the record; returns it and a generated secret, if any.

    Shared with anything that registers clients (the admin API, the CLI, tenant files).
    """
    check_client_id(client_id)
    body = as_object(body)
    reject_unknown(body, FIELDS)
    same_as_path(body, "client_id", client_id)
    client_type, method = _type_and_method(body)
    jwks, jwks_uri = _keys(body, method)
    secret = string(body, "client_secret", max_length=MAX_SECRET)
    if secret is not None and method not in SECRET_METHODS:
        raise FieldError("client_secret", "only for client_secret_basic, _post or _jwt clients")
    salt = tenant.key_salt
    secret_hash = secret_encrypted = None
    generated = None
    sealed = method in SEALED_SECRET_METHODS
    if method in SECRET_METHODS:
        kept = existing is not None and existing.secret_hash is not None
        if sealed:
            kept = kept and existing is not None and existing.secret_encrypted is not None
        if secret is None and kept and existing is not None:
            secret_hash = existing.secret_hash
            secret_encrypted = existing.secret_encrypted if sealed else None
        else:
            if secret is None:
                secret = generated = secrets.token_urlsafe(32)
            secret_hash = keys.secret_hash(tenant.tenant_id, salt, secret)
            if sealed:
                secret_encrypted = keys.seal_secret(tenant.tenant_id, salt, secret, client_id)
    client = Client(
        tenant_id=tenant.tenant_id,
        client_id=client_id,
        type=client_type,
        token_endpoint_auth_method=method.value,
        scope=_scope(body),
        enabled=boolean(body, "enabled", True),
        secret_hash=secret_hash,
        secret_encrypted=secret_encrypted,
        jwks=jwks,
        jwks_uri=jwks_uri,
        created_at=existing.created_at if existing else now,
        updated_at=now,
    )
    return client, generated


async def put_client(
    services: Services, tenant_id: TenantId, client_id: ClientId, body: Any
) -> ClientWrite:
    tenant = await require_tenant(services, tenant_id)
    existing = await services.store.get_client(tenant_id, check_client_id(client_id))
    client, generated = client_from_json(
        services.keys, tenant, client_id, body, existing=existing, now=services.clock()
    )
    try:
        await services.store.put_client(client)
    finally:
        services.directory.invalidate()
    return ClientWrite(client, existing is None, generated)


async def get_client(services: Services, tenant_id: TenantId, client_id: ClientId) -> Client:
    await require_tenant(services, tenant_id)
    client = await services.store.get_client(tenant_id, client_id)
    if client is None:
        raise NotFound("no such client")
    return client


async def list_clients(services: Services, tenant_id: TenantId) -> list[Client]:
    await require_tenant(services, tenant_id)
    return sorted(await services.store.list_clients(tenant_id), key=lambda c: c.client_id)


async def delete_client(services: Services, tenant_id: TenantId, client_id: ClientId) -> None:
    """Remove the registration; its credentials stay as they are (revoked or not)."""
    await require_tenant(services, tenant_id)
    try:
        found = await services.store.delete_client(tenant_id, client_id)
    finally:
        services.directory.invalidate()
    if not found:
        raise NotFound("no such client")
