"""Records to BSON documents and back.

Hashes, salts and sealed secrets are stored as BSON binary (``bytes``); settings and
JWKS as embedded documents; a client's scope as a sorted array; times as integer
seconds, except ``expire_at``, a BSON date for the TTL monitor. Optional fields are
written as null and read with ``get``, so documents written before a field existed load.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.models import (
    AdminKey,
    Client,
    ClientType,
    Credential,
    Event,
    EventDraft,
    Grant,
    PluginVersion,
    Tenant,
    TokenType,
)
from app.store.mongodb.schema import EXPIRE_AT
from app.types import TenantId

Document = dict[str, Any]

MAX_BSON_DATE_S = 253_402_300_799
"""9999-12-31T23:59:59Z: the last instant ``datetime`` can hold."""

HIDDEN: Document = {"_id": False, EXPIRE_AT: False}
"""Projection leaving out what the records do not carry."""


def expire_at(exp: int, retention_s: int) -> datetime:
    """When the TTL monitor may drop a record that expires at ``exp``."""
    seconds = min(max(exp + retention_s, 0), MAX_BSON_DATE_S)
    return datetime.fromtimestamp(seconds, tz=UTC)


def tenant_doc(tenant: Tenant) -> Document:
    return {
        "tenant_id": tenant.tenant_id,
        "settings": tenant.settings,
        "key_salt": tenant.key_salt,
        "created_at": tenant.created_at,
        "updated_at": tenant.updated_at,
    }


def tenant_of(doc: Document) -> Tenant:
    return Tenant(
        tenant_id=doc["tenant_id"],
        settings=doc["settings"],
        key_salt=doc["key_salt"],
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )


def admin_key_doc(key: AdminKey) -> Document:
    return {
        "tenant_id": key.tenant_id,
        "key_id": key.key_id,
        "key_hash": key.key_hash,
        "created_at": key.created_at,
    }


def admin_key_of(doc: Document) -> AdminKey:
    return AdminKey(
        tenant_id=doc["tenant_id"],
        key_id=doc["key_id"],
        key_hash=doc["key_hash"],
        created_at=doc["created_at"],
    )


def client_doc(client: Client) -> Document:
    """Every field but ``created_at``, which only an insert sets."""
    return {
        "tenant_id": client.tenant_id,
        "client_id": client.client_id,
        "type": client.type.value,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "scope": sorted(client.scope),
        "enabled": client.enabled,
        "secret_hash": client.secret_hash,
        "secret_encrypted": client.secret_encrypted,
        "jwks": client.jwks,
        "jwks_uri": client.jwks_uri,
        "updated_at": client.updated_at,
    }


def client_of(doc: Document) -> Client:
    return Client(
        tenant_id=doc["tenant_id"],
        client_id=doc["client_id"],
        type=ClientType(doc["type"]),
        token_endpoint_auth_method=doc["token_endpoint_auth_method"],
        scope=frozenset(doc["scope"]),
        enabled=doc.get("enabled", True),
        secret_hash=doc.get("secret_hash"),
        secret_encrypted=doc.get("secret_encrypted"),
        jwks=doc.get("jwks"),
        jwks_uri=doc.get("jwks_uri"),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )


def plugin_doc(plugin: PluginVersion) -> Document:
    return {
        "tenant_id": plugin.tenant_id,
        "name": plugin.name,
        "version": plugin.version,
        "source": plugin.source,
        "sha256": plugin.sha256,
        "hooks": list(plugin.hooks),
        "uploaded_by": plugin.uploaded_by,
        "uploaded_at": plugin.uploaded_at,
        "current": plugin.current,
    }


def plugin_of(doc: Document) -> PluginVersion:
    return PluginVersion(
        tenant_id=doc["tenant_id"],
        name=doc["name"],
        version=doc["version"],
        source=doc["source"],
        sha256=doc["sha256"],
        hooks=tuple(doc["hooks"]),
        uploaded_by=doc["uploaded_by"],
        uploaded_at=doc["uploaded_at"],
        current=doc["current"],
    )


def credential_doc(tenant_id: TenantId, credential: Credential, retention_s: int) -> Document:
    return {
        "tenant_id": tenant_id,
        "token_hash": credential.token_hash,
        "type": credential.type.value,
        "client_id": credential.client_id,
        "exp": credential.exp,
        "sub": credential.sub,
        "grant_id": credential.grant_id,
        "device_session_id": credential.device_session_id,
        "scope": credential.scope,
        "iat": credential.iat,
        "revoked_at": credential.revoked_at,
        "revoked_cause": credential.revoked_cause,
        EXPIRE_AT: expire_at(credential.exp, retention_s),
        # Absent rather than null: the status index (``tenant_status``) is partial on it.
        **({} if credential.status_idx is None else {"status_idx": credential.status_idx}),
    }


def credential_of(doc: Document) -> Credential:
    return Credential(
        tenant_id=doc["tenant_id"],
        token_hash=doc["token_hash"],
        type=TokenType(doc["type"]),
        client_id=doc["client_id"],
        exp=doc["exp"],
        sub=doc.get("sub"),
        grant_id=doc.get("grant_id"),
        device_session_id=doc.get("device_session_id"),
        scope=doc.get("scope"),
        iat=doc.get("iat"),
        revoked_at=doc.get("revoked_at"),
        revoked_cause=doc.get("revoked_cause"),
        status_idx=doc.get("status_idx"),
    )


def grant_doc(grant: Grant) -> Document:
    return {
        "tenant_id": grant.tenant_id,
        "grant_id": grant.grant_id,
        "client_id": grant.client_id,
        "sub": grant.sub,
        "scope": grant.scope,
        "updated_at": grant.updated_at,
    }


def grant_of(doc: Document) -> Grant:
    return Grant(
        tenant_id=doc["tenant_id"],
        grant_id=doc["grant_id"],
        client_id=doc["client_id"],
        sub=doc["sub"],
        scope=doc.get("scope"),
        updated_at=doc["updated_at"],
    )


def event_doc(tenant_id: TenantId, event_id: int, draft: EventDraft, count: int) -> Document:
    return {
        "tenant_id": tenant_id,
        "id": event_id,
        "time": draft.time,
        "type": draft.type,
        "cause": draft.cause,
        "count": count if draft.count is None else draft.count,
        "client_id": draft.client_id,
        "sub": draft.sub,
        "grant_id": draft.grant_id,
        "token_type": draft.token_type,
        "jti": draft.jti,
        "device_session_id": draft.device_session_id,
    }


def event_of(doc: Document) -> Event:
    return Event(
        id=doc["id"],
        time=doc["time"],
        type=doc["type"],
        cause=doc["cause"],
        count=doc["count"],
        client_id=doc.get("client_id"),
        sub=doc.get("sub"),
        grant_id=doc.get("grant_id"),
        token_type=doc.get("token_type"),
        jti=doc.get("jti"),
        device_session_id=doc.get("device_session_id"),
    )
