"""Builders for the records the contract tests store, and a tenant full of data."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from app.models import (
    AdminKey,
    ByHash,
    Client,
    ClientType,
    Credential,
    DeliveryAttempt,
    DenyEntry,
    EventDraft,
    Grant,
    MarkKind,
    NotBeforeMark,
    PluginVersion,
    Receiver,
    RevocationPlan,
    SigningKey,
    Tenant,
    TokenType,
)
from app.store.base import Store
from app.types import TenantId

NOW = 1_700_000_000
LATER = NOW + 3_600

FAILURE_KEY = "address 192.0.2.1"
"""A failed client authentication's key, as ``app.oauth.abuse_limits`` builds them."""

AT = TokenType.ACCESS_TOKEN
RT = TokenType.REFRESH_TOKEN
DS = TokenType.DEVICE_SECRET


def issuer(tenant_id: TenantId) -> str:
    return f"https://{tenant_id}.example.com"


def h(token: str) -> bytes:
    """A stand-in for the keyed hash of ``token`` (the store never sees tokens)."""
    return hashlib.sha256(token.encode()).digest()


def tenant(tenant_id: TenantId = "acme", **fields: Any) -> Tenant:
    values: dict[str, Any] = {
        "settings": {"issuer": issuer(tenant_id)},
        "key_salt": hashlib.sha256(tenant_id.encode()).digest()[:16],
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(fields)
    return Tenant(tenant_id=tenant_id, **values)


async def add_tenant(store: Store, tenant_id: TenantId = "acme") -> Tenant:
    return await store.put_tenant(tenant(tenant_id), [issuer(tenant_id)])


def client(tenant_id: TenantId, client_id: str = "app", **fields: Any) -> Client:
    values: dict[str, Any] = {
        "type": ClientType.CONFIDENTIAL,
        "token_endpoint_auth_method": "client_secret_basic",
        "secret_hash": b"\x01" * 32,
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(fields)
    return Client(tenant_id=tenant_id, client_id=client_id, **values)


def plugin(
    tenant_id: TenantId, name: str = "audit", source: str = "", **fields: Any
) -> PluginVersion:
    """An upload of ``name``; the store numbers it (``version`` and ``current`` are ignored)."""
    source = source or f"def before_revocation(ctx):\n    return None  # {name}\n"
    values: dict[str, Any] = {
        "sha256": hashlib.sha256(source.encode()).hexdigest(),
        "hooks": ("before_revocation",),
        "uploaded_by": "operator",
        "uploaded_at": NOW,
        "version": 0,
    }
    values.update(fields)
    return PluginVersion(tenant_id=tenant_id, name=name, source=source, **values)


def credential(
    tenant_id: TenantId,
    token: str,
    type: TokenType = AT,
    client_id: str = "app",
    **fields: Any,
) -> Credential:
    values: dict[str, Any] = {"exp": LATER, "iat": NOW - 60}
    values.update(fields)
    return Credential(tenant_id, h(token), type, client_id, **values)


def revoked(cause: str = "grant", time: int = NOW, **fields: Any) -> EventDraft:
    return EventDraft(type="revoked", cause=cause, time=time, **fields)


def revoke_token(token: str, *, cause: str = "token", at: int = NOW) -> RevocationPlan:
    """The plan for revoking one registered token, with one ``revoked`` event."""
    return RevocationPlan(
        revoked_at=at,
        cause=cause,
        primary=h(token),
        selectors=(ByHash(h(token)),),
        events=(revoked(cause, at),),
    )


async def is_revoked(store: Store, tenant_id: TenantId, token: str) -> bool:
    found = await store.find_credential(tenant_id, h(token))
    assert found is not None
    return found.revoked_at is not None


@dataclass(frozen=True)
class Populated:
    tenant: Tenant
    client: Client
    key: AdminKey
    grant: Grant
    plugin: PluginVersion


async def populate(store: Store, tenant_id: TenantId) -> Populated:
    """A tenant with one of everything the store keeps."""
    stored = await add_tenant(store, tenant_id)
    app = client(tenant_id)
    await store.put_client(app)
    key = AdminKey(tenant_id, "k1", b"\x02" * 32, NOW)
    await store.add_admin_key(key)
    uploaded = await store.add_plugin_version(plugin(tenant_id))
    grant = Grant(tenant_id, "g1", "app", "alice", "openid", NOW)
    await store.put_grant(grant)
    await store.register_credentials(
        tenant_id,
        [
            credential(tenant_id, "live", sub="alice", grant_id="g1"),
            credential(tenant_id, "gone", RT, sub="alice", device_session_id="s1"),
        ],
    )
    outcome = await store.apply_revocation(
        tenant_id,
        RevocationPlan(
            revoked_at=NOW,
            cause="spid",
            primary=h("gone"),
            primary_deny=DenyEntry("jti-1", LATER),
            selectors=(ByHash(h("gone")),),
            end_sessions=("s1",),
            marks=(NotBeforeMark(MarkKind.CLIENT, "app", NOW),),
            events=(revoked("spid"),),
        ),
    )
    assert outcome.applied
    # A mark that retention purges leaves the tenant's retention horizon.
    old_mark = NotBeforeMark(MarkKind.GRANT, "g-old", NOW - 100)
    assert (
        await store.apply_revocation(
            tenant_id, RevocationPlan(NOW - 100, "grant", marks=(old_mark,))
        )
    ).applied
    assert await store.purge_marks(tenant_id, NOW - 50, 10) == 1
    assert await store.use_assertion_id(tenant_id, "app", "assertion-1", LATER, NOW)
    await store.record_auth_failure(tenant_id, [FAILURE_KEY], NOW, NOW + 60)
    assert await store.allocate_status_indexes(tenant_id, 2) == 0
    await store.add_signing_key(
        SigningKey(tenant_id, "kid-1", "ES256", {"kty": "EC"}, b"sealed", NOW), None
    )
    await store.put_receiver(
        Receiver(tenant_id, "rs-1", "push", ("revoked",), url="https://rs.example/set"), 0
    )
    state = await store.claim_receiver(tenant_id, "rs-1", "me", NOW, LATER)
    assert state is not None
    await store.record_delivery(state, "me", [DeliveryAttempt(NOW, 1, "delivered", 202)], 10)
    return Populated(stored, app, key, grant, uploaded)


async def assert_populated(store: Store, data: Populated) -> None:
    tid = data.tenant.tenant_id
    assert await store.get_tenant(tid) == data.tenant
    assert await store.list_clients(tid) == [data.client]
    assert await store.list_admin_keys(tid) == [data.key]
    assert await store.list_plugins(tid) == [data.plugin]
    assert await store.get_grant(tid, "g1") == data.grant
    assert await store.find_credential(tid, h("live")) is not None
    assert await is_revoked(store, tid, "gone")
    assert len(await store.list_events(tid, 0, 100)) == 1
    assert await store.not_before(tid, [(MarkKind.CLIENT, "app")]) == NOW
    assert await store.is_denied(tid, "jti-1")
    assert await store.ended_session(tid, "s1") == NOW
    assert await store.subject_clients(tid, "alice", NOW) != []
    assert not await store.use_assertion_id(tid, "app", "assertion-1", LATER, NOW)
    assert await store.auth_failures(tid, [FAILURE_KEY], NOW) == [1]
    assert await store.retention_horizon(tid) == NOW - 50
    assert await store.allocated_status_indexes(tid) == 2
    assert [k.kid for k in await store.list_signing_keys(tid)] == ["kid-1"]
    assert [r.receiver_id for r in await store.list_receivers(tid)] == ["rs-1"]
    assert len(await store.delivery_log(tid, "rs-1", 10)) == 1


async def assert_empty(store: Store, tenant_id: TenantId) -> None:
    """Nothing of ``populate(store, tenant_id)`` is left."""
    assert await store.get_tenant(tenant_id) is None
    await assert_no_data(store, tenant_id)


async def assert_no_data(store: Store, tenant_id: TenantId) -> None:
    """Nothing of ``populate(store, tenant_id)`` but (perhaps) the tenant record is left."""
    assert await store.get_client(tenant_id, "app") is None
    assert await store.list_clients(tenant_id) == []
    assert await store.get_admin_key(tenant_id, "k1") is None
    assert await store.list_admin_keys(tenant_id) == []
    assert await store.get_plugin_version(tenant_id, "audit") is None
    assert await store.list_plugins(tenant_id) == []
    assert await store.get_grant(tenant_id, "g1") is None
    assert await store.find_credential(tenant_id, h("live")) is None
    assert await store.find_credential(tenant_id, h("gone")) is None
    assert await store.list_events(tenant_id, 0, 100) == []
    assert await store.not_before(tenant_id, [(MarkKind.CLIENT, "app")]) is None
    assert not await store.is_denied(tenant_id, "jti-1")
    assert await store.ended_session(tenant_id, "s1") is None
    assert await store.subject_clients(tenant_id, "alice", NOW) == []
    assert await store.auth_failures(tenant_id, [FAILURE_KEY], NOW) == [0]
    assert await store.retention_horizon(tenant_id) is None
    assert await store.allocated_status_indexes(tenant_id) == 0
    assert await store.list_signing_keys(tenant_id) == []
    assert await store.list_receivers(tenant_id) == []
    assert await store.get_receiver_state(tenant_id, "rs-1") is None
    assert await store.delivery_log(tenant_id, "rs-1", 10) == []
