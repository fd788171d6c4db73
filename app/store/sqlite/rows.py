"""Records to rows and back: JSON as text, scope sets space-joined, bytes as BLOB."""

from __future__ import annotations

import json
from typing import Any

from app.models import (
    AdminKey,
    Client,
    ClientType,
    Credential,
    Event,
    Grant,
    PluginVersion,
    Tenant,
    TokenType,
)
from app.types import JSON, TenantId

Row = tuple[Any, ...]


def dump_json(value: JSON | None) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def load_json(text: str | None) -> JSON | None:
    if text is None:
        return None
    value: JSON = json.loads(text)
    return value


def tenant_row(t: Tenant) -> Row:
    return (t.tenant_id, dump_json(t.settings), t.key_salt, t.created_at, t.updated_at)


def tenant_of(row: Row) -> Tenant:
    return Tenant(row[0], load_json(row[1]) or {}, bytes(row[2]), row[3], row[4])


def client_row(c: Client) -> Row:
    return (
        c.tenant_id,
        c.client_id,
        c.type.value,
        c.token_endpoint_auth_method,
        " ".join(sorted(c.scope)),
        int(c.enabled),
        c.secret_hash,
        c.secret_encrypted,
        dump_json(c.jwks),
        c.jwks_uri,
        c.created_at,
        c.updated_at,
    )


def client_of(row: Row) -> Client:
    return Client(
        tenant_id=row[0],
        client_id=row[1],
        type=ClientType(row[2]),
        token_endpoint_auth_method=row[3],
        scope=frozenset(row[4].split()),
        enabled=bool(row[5]),
        secret_hash=None if row[6] is None else bytes(row[6]),
        secret_encrypted=None if row[7] is None else bytes(row[7]),
        jwks=load_json(row[8]),
        jwks_uri=row[9],
        created_at=row[10],
        updated_at=row[11],
    )


def credential_row(tenant_id: TenantId, c: Credential) -> Row:
    return (
        tenant_id,
        c.token_hash,
        c.type.value,
        c.client_id,
        c.exp,
        c.sub,
        c.grant_id,
        c.device_session_id,
        c.scope,
        c.iat,
        c.revoked_at,
        c.revoked_cause,
        c.status_idx,
    )


def credential_of(row: Row) -> Credential:
    return Credential(
        tenant_id=row[0],
        token_hash=bytes(row[1]),
        type=TokenType(row[2]),
        client_id=row[3],
        exp=row[4],
        sub=row[5],
        grant_id=row[6],
        device_session_id=row[7],
        scope=row[8],
        iat=row[9],
        revoked_at=row[10],
        revoked_cause=row[11],
        status_idx=row[12],
    )


def grant_row(g: Grant) -> Row:
    return (g.tenant_id, g.grant_id, g.client_id, g.sub, g.scope, g.updated_at)


def grant_of(row: Row) -> Grant:
    return Grant(*row)


def admin_key_of(row: Row) -> AdminKey:
    return AdminKey(row[0], row[1], bytes(row[2]), row[3])


def event_of(row: Row) -> Event:
    return Event(
        id=row[0],
        time=row[1],
        type=row[2],
        cause=row[3],
        count=row[4],
        client_id=row[5],
        sub=row[6],
        grant_id=row[7],
        token_type=row[8],
        jti=row[9],
        device_session_id=row[10],
    )


def plugin_row(p: PluginVersion) -> Row:
    return (
        p.tenant_id,
        p.name,
        p.version,
        p.source,
        p.sha256,
        json.dumps(list(p.hooks), separators=(",", ":")),
        p.uploaded_by,
        p.uploaded_at,
        int(p.current),
    )


def plugin_of(row: Row) -> PluginVersion:
    return PluginVersion(
        tenant_id=row[0],
        name=row[1],
        version=row[2],
        source=row[3],
        sha256=row[4],
        hooks=tuple(json.loads(row[5])),
        uploaded_by=row[6],
        uploaded_at=row[7],
        current=bool(row[8]),
    )
