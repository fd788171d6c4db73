"""Clients and tenant admin keys: per tenant, replaced in place, bumping config_version."""

from __future__ import annotations

from app.models import AdminKey, ClientType
from app.store.base import Store
from tests.store.records import NOW, add_tenant, client


async def test_client_round_trip(store: Store) -> None:
    await add_tenant(store, "acme")
    stored = client(
        "acme",
        "https://app.example.com/client",
        type=ClientType.CONFIDENTIAL,
        token_endpoint_auth_method="client_secret_jwt",
        scope=frozenset({"revoke_any_token", "introspect"}),
        enabled=False,
        secret_hash=None,
        secret_encrypted=b"\x00sealed\xff",
        jwks={"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "abc"}]},
        jwks_uri="https://app.example.com/jwks",
    )
    await store.put_client(stored)
    assert await store.get_client("acme", "https://app.example.com/client") == stored
    assert await store.list_clients("acme") == [stored]


async def test_public_client_with_defaults_round_trip(store: Store) -> None:
    await add_tenant(store, "acme")
    public = client(
        "acme", "spa", type=ClientType.PUBLIC, token_endpoint_auth_method="none", secret_hash=None
    )
    await store.put_client(public)
    assert await store.get_client("acme", "spa") == public


async def test_put_client_replaces_it_keeping_created_at(store: Store) -> None:
    await add_tenant(store, "acme")
    await store.put_client(client("acme", scope=frozenset({"introspect"})))
    replacement = client(
        "acme",
        secret_hash=b"\x09" * 32,
        scope=frozenset(),
        created_at=NOW + 50,
        updated_at=NOW + 50,
    )
    await store.put_client(replacement)
    stored = await store.get_client("acme", "app")
    assert stored is not None
    assert stored.created_at == NOW
    assert stored.updated_at == NOW + 50
    assert stored.secret_hash == b"\x09" * 32
    assert stored.scope == frozenset()
    assert await store.list_clients("acme") == [stored]


async def test_unknown_client_is_none(store: Store) -> None:
    await add_tenant(store, "acme")
    assert await store.get_client("acme", "app") is None
    assert await store.list_clients("acme") == []


async def test_clients_never_cross_tenants(store: Store) -> None:
    await add_tenant(store, "acme")
    await add_tenant(store, "globex")
    acme_app = client("acme", secret_hash=b"\x0a" * 32)
    globex_app = client("globex", secret_hash=b"\x0b" * 32, type=ClientType.PUBLIC)
    await store.put_client(acme_app)
    await store.put_client(globex_app)
    await store.put_client(client("acme", "only-acme"))

    assert await store.get_client("acme", "app") == acme_app
    assert await store.get_client("globex", "app") == globex_app
    assert await store.get_client("globex", "only-acme") is None
    assert [c.client_id for c in await store.list_clients("globex")] == ["app"]

    assert await store.delete_client("globex", "app") is True
    assert await store.get_client("globex", "app") is None
    assert await store.get_client("acme", "app") == acme_app


async def test_delete_client(store: Store) -> None:
    await add_tenant(store, "acme")
    await store.put_client(client("acme"))
    assert await store.delete_client("acme", "app") is True
    assert await store.get_client("acme", "app") is None
    assert await store.delete_client("acme", "app") is False


async def test_admin_keys(store: Store) -> None:
    await add_tenant(store, "acme")
    first = AdminKey("acme", "k1", b"\x01" * 32, NOW)
    second = AdminKey("acme", "k2", b"\x02" * 32, NOW + 1)
    await store.add_admin_key(first)
    await store.add_admin_key(second)

    assert await store.get_admin_key("acme", "k1") == first
    assert sorted(await store.list_admin_keys("acme"), key=lambda k: k.key_id) == [first, second]
    assert await store.delete_admin_key("acme", "k1") is True
    assert await store.get_admin_key("acme", "k1") is None
    assert await store.list_admin_keys("acme") == [second]
    assert await store.delete_admin_key("acme", "k1") is False


async def test_admin_keys_never_cross_tenants(store: Store) -> None:
    await add_tenant(store, "acme")
    await add_tenant(store, "globex")
    key = AdminKey("acme", "k1", b"\x01" * 32, NOW)
    await store.add_admin_key(key)

    assert await store.get_admin_key("globex", "k1") is None
    assert await store.list_admin_keys("globex") == []
    assert await store.delete_admin_key("globex", "k1") is False
    assert await store.get_admin_key("acme", "k1") == key


async def test_config_version_changes_on_client_and_key_writes(store: Store) -> None:
    await add_tenant(store, "acme")
    versions = [await store.config_version()]
    await store.put_client(client("acme"))
    versions.append(await store.config_version())
    await store.put_client(client("acme", enabled=False))
    versions.append(await store.config_version())
    await store.delete_client("acme", "app")
    versions.append(await store.config_version())
    await store.add_admin_key(AdminKey("acme", "k1", b"\x01" * 32, NOW))
    versions.append(await store.config_version())
    await store.delete_admin_key("acme", "k1")
    versions.append(await store.config_version())
    assert len(set(versions)) == len(versions)
