"""Tenants: create, replace, issuers unique across tenants, delete with all data."""

from __future__ import annotations

import pytest

from app.errors import Conflict, NotFound, StoreUnavailable
from app.models import DenyEntry, Grant, RevocationPlan
from app.store.base import Store
from app.store.mongodb import store as mongodb_store
from app.store.sqlite import store as sqlite_store
from tests.store.records import (
    LATER,
    NOW,
    add_tenant,
    assert_empty,
    assert_no_data,
    assert_populated,
    client,
    credential,
    h,
    issuer,
    populate,
    revoke_token,
    revoked,
    tenant,
)

ALIAS = "https://login.example.org"


async def test_put_tenant_creates_it(store: Store) -> None:
    acme = tenant("acme", settings={"issuer": issuer("acme"), "revocation": {"cascade": "cie"}})
    assert await store.put_tenant(acme, [issuer("acme")]) == acme
    assert await store.get_tenant("acme") == acme
    assert await store.list_tenants() == [acme]


async def test_unknown_tenant_is_none(store: Store) -> None:
    await add_tenant(store, "acme")
    assert await store.get_tenant("globex") is None


async def test_list_tenants_lists_every_tenant(store: Store) -> None:
    for tenant_id in ("globex", "acme", "initech"):
        await add_tenant(store, tenant_id)
    listed = await store.list_tenants()
    assert sorted(t.tenant_id for t in listed) == ["acme", "globex", "initech"]


async def test_replacing_keeps_salt_creation_and_data(store: Store) -> None:
    first = await add_tenant(store, "acme")
    await store.put_client(client("acme"))
    await store.register_credentials("acme", [credential("acme", "t1")])
    settings = {"issuer": issuer("acme"), "jsonp": {"enabled": True}}
    replacement = tenant(
        "acme", settings=settings, key_salt=b"\xff" * 16, created_at=NOW + 5, updated_at=NOW + 9
    )

    stored = await store.put_tenant(replacement, [issuer("acme")])

    assert stored.key_salt == first.key_salt
    assert stored.created_at == first.created_at
    assert stored.settings == settings
    assert stored.updated_at == NOW + 9
    assert await store.get_tenant("acme") == stored
    assert await store.get_client("acme", "app") is not None
    assert await store.find_credential("acme", h("t1")) is not None


async def test_issuer_of_another_tenant_is_a_conflict(store: Store) -> None:
    await store.put_tenant(tenant("acme"), [issuer("acme"), ALIAS])
    with pytest.raises(Conflict):
        await store.put_tenant(tenant("globex"), [issuer("globex"), ALIAS])
    assert await store.get_tenant("globex") is None
    # the failed put left its own issuer free
    await store.put_tenant(tenant("initech"), [issuer("globex")])


async def test_issuer_clash_leaves_an_existing_tenant_unchanged(store: Store) -> None:
    await add_tenant(store, "acme")
    globex = await add_tenant(store, "globex")
    changed = tenant("globex", settings={"issuer": issuer("acme")}, updated_at=NOW + 1)
    with pytest.raises(Conflict):
        await store.put_tenant(changed, [issuer("acme")])
    assert await store.get_tenant("globex") == globex
    # globex still owns its issuer: acme cannot take it
    with pytest.raises(Conflict):
        await store.put_tenant(tenant("acme"), [issuer("acme"), issuer("globex")])


async def test_replaced_issuers_are_freed(store: Store) -> None:
    await store.put_tenant(tenant("acme"), [issuer("acme"), ALIAS])
    await store.put_tenant(tenant("acme"), [issuer("acme")])
    await store.put_tenant(tenant("globex"), [issuer("globex"), ALIAS])
    with pytest.raises(Conflict):
        await store.put_tenant(tenant("acme"), [issuer("acme"), ALIAS])


async def test_a_tenant_keeps_its_own_issuers_without_conflict(store: Store) -> None:
    await store.put_tenant(tenant("acme"), [issuer("acme"), ALIAS])
    await store.put_tenant(tenant("acme"), [issuer("acme"), ALIAS, ALIAS])
    assert await store.get_tenant("acme") is not None


async def test_delete_tenant_removes_all_its_data_only(store: Store) -> None:
    await populate(store, "acme")
    globex = await populate(store, "globex")

    assert await store.delete_tenant("acme") is True

    await assert_empty(store, "acme")
    await assert_populated(store, globex)
    assert [t.tenant_id for t in await store.list_tenants()] == ["globex"]
    assert await store.delete_tenant("acme") is False


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Delete a tenant's data a few rows at a time, so that a test has many chunks."""
    monkeypatch.setattr(sqlite_store, "DELETE_CHUNK", 3)
    monkeypatch.setattr(mongodb_store, "DELETE_CHUNK", 3)
    return 3


async def test_a_large_tenant_is_deleted_chunk_by_chunk(store: Store, small_chunks: int) -> None:
    await populate(store, "acme")
    globex = await populate(store, "globex")
    many = [credential("acme", f"t{i}", grant_id=f"g{i % 4}") for i in range(5 * small_chunks)]
    await store.register_credentials("acme", many)

    assert await store.delete_tenant("acme") is True

    await assert_empty(store, "acme")
    assert all([await store.find_credential("acme", h(f"t{i}")) is None for i in range(len(many))])
    await assert_populated(store, globex)
    assert await store.finish_deletions() == 0


async def test_an_interrupted_deletion_keeps_the_id_until_it_is_finished(
    store: Store, small_chunks: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    await populate(store, "acme")
    globex = await populate(store, "globex")

    async def stopped(tenant_id: str) -> None:  # the process died after the first step
        raise StoreUnavailable("stopped")

    monkeypatch.setattr(store, "_delete_tenant_data", stopped)
    with pytest.raises(StoreUnavailable):
        await store.delete_tenant("acme")
    monkeypatch.undo()

    # The tenant is gone at once; its id is not free while its data is still there.
    assert await store.get_tenant("acme") is None
    assert [t.tenant_id for t in await store.list_tenants()] == ["globex"]
    assert await store.get_client("acme", "app") is None
    with pytest.raises(Conflict, match="being deleted"):
        await store.put_tenant(tenant("acme"), [issuer("acme")])
    assert await store.delete_tenant("acme") is False

    assert await store.finish_deletions() == 1
    await assert_no_data(store, "acme")
    await assert_populated(store, globex)
    assert await store.finish_deletions() == 0
    await add_tenant(store, "acme")
    await assert_no_data(store, "acme")


async def test_a_write_that_comes_after_the_deletion_leaves_nothing_behind(store: Store) -> None:
    """A request that resolved its tenant before the deletion, and writes after it."""
    await add_tenant(store, "acme")
    await store.register_credentials("acme", [credential("acme", "live", sub="alice")])
    await store.delete_tenant("acme")

    with pytest.raises(NotFound):
        await store.register_credentials("acme", [credential("acme", "late", sub="bob")])
    with pytest.raises(NotFound):
        await store.put_grant(Grant("acme", "g9", "app", "bob", "openid", NOW))
    late_jwt = RevocationPlan(
        NOW, "token", primary_deny=DenyEntry("jti-late", LATER), events=(revoked("token"),)
    )
    assert not (await store.apply_revocation("acme", late_jwt)).applied

    await add_tenant(store, "acme")
    assert await store.subject_clients("acme", "bob", NOW) == []
    assert await store.get_grant("acme", "g9") is None
    assert not await store.is_denied("acme", "jti-late")
    assert await store.list_events("acme", 0, 10) == []


async def test_delete_tenant_frees_its_issuers(store: Store) -> None:
    await store.put_tenant(tenant("acme"), [issuer("acme"), ALIAS])
    await store.delete_tenant("acme")
    await store.put_tenant(tenant("globex"), [issuer("globex"), ALIAS])


async def test_recreated_tenant_has_none_of_the_old_data(store: Store) -> None:
    await populate(store, "acme")
    await store.delete_tenant("acme")

    recreated = tenant("acme", key_salt=b"\x07" * 16)
    assert await store.put_tenant(recreated, [issuer("acme")]) == recreated

    assert await store.get_tenant("acme") == recreated
    await assert_no_data(store, "acme")
    await store.register_credentials("acme", [credential("acme", "fresh")])
    outcome = await store.apply_revocation("acme", revoke_token("fresh"))
    assert [e.id for e in await store.list_events("acme", 0, 100)] == list(outcome.event_ids)


async def test_recreated_tenant_registers_old_tokens_afresh(store: Store) -> None:
    await populate(store, "acme")
    await store.delete_tenant("acme")
    await add_tenant(store, "acme")
    # the same hash with other fields is no clash: the old record is gone
    outcome = await store.register_credentials("acme", [credential("acme", "gone", exp=NOW + 5)])
    assert outcome.registered == 1
    found = await store.find_credential("acme", h("gone"))
    assert found is not None
    assert found.revoked_at is None
    assert found.exp == NOW + 5


async def test_config_version_changes_on_tenant_writes(store: Store) -> None:
    versions = [await store.config_version()]
    await add_tenant(store, "acme")
    versions.append(await store.config_version())
    await store.put_tenant(tenant("acme", updated_at=NOW + 1), [issuer("acme")])
    versions.append(await store.config_version())
    await store.delete_tenant("acme")
    versions.append(await store.config_version())
    assert len(set(versions)) == len(versions)
