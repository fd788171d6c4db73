"""Client assertion ids (RFC 7523 ``jti``): used once until their ``exp``, on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.store.base import Store
from app.store.mongodb.store import MongoStore
from app.store.sqlite.store import SqliteStore
from tests.store.records import LATER, NOW, add_tenant, populate
from tests.support.secantus import shared_server


async def test_an_id_is_used_once_until_it_expires(store: Store) -> None:
    await add_tenant(store)
    assert await store.use_assertion_id("acme", "app", "j1", NOW + 60, NOW)
    assert not await store.use_assertion_id("acme", "app", "j1", NOW + 60, NOW)
    # A later exp does not make a replay new.
    assert not await store.use_assertion_id("acme", "app", "j1", NOW + 120, NOW + 30)
    # Still refused at its exp; once past it, the record is taken over...
    assert not await store.use_assertion_id("acme", "app", "j1", NOW + 200, NOW + 60)
    assert await store.use_assertion_id("acme", "app", "j1", NOW + 200, NOW + 61)
    # ... and holds until the new exp.
    assert not await store.use_assertion_id("acme", "app", "j1", NOW + 300, NOW + 199)


async def test_ids_are_per_tenant_and_per_client(store: Store) -> None:
    for tenant_id in ("acme", "globex"):
        await add_tenant(store, tenant_id)
    assert await store.use_assertion_id("acme", "app", "j1", LATER, NOW)
    assert await store.use_assertion_id("acme", "other", "j1", LATER, NOW)
    assert await store.use_assertion_id("globex", "app", "j1", LATER, NOW)
    assert await store.use_assertion_id("acme", "app", "J1", LATER, NOW)
    for tenant_id, client_id in (("acme", "app"), ("acme", "other"), ("globex", "app")):
        assert not await store.use_assertion_id(tenant_id, client_id, "j1", LATER, NOW)


async def test_concurrent_uses_of_one_id_succeed_once(store: Store) -> None:
    await add_tenant(store)
    uses = [store.use_assertion_id("acme", "app", "race", LATER, NOW) for _ in range(20)]
    assert sorted(await asyncio.gather(*uses)) == [False] * 19 + [True]


@asynccontextmanager
async def second_instance(first: Store) -> AsyncIterator[Store]:
    """Another store on the same file or database: another instance of the service."""
    other: Store
    if isinstance(first, SqliteStore):
        other = SqliteStore(first.path)
    else:
        assert isinstance(first, MongoStore)
        other = MongoStore(shared_server().uri, first._database_name)
    await other.open()
    try:
        yield other
    finally:
        await other.close()


async def test_instances_sharing_the_store_share_the_ids(store: Store) -> None:
    await add_tenant(store)
    async with second_instance(store) as other:
        assert await store.use_assertion_id("acme", "app", "shared", LATER, NOW)
        assert not await other.use_assertion_id("acme", "app", "shared", LATER, NOW)
        racing = [
            instance.use_assertion_id("acme", "app", "raced", LATER, NOW)
            for instance in [store, other] * 10
        ]
        assert sorted(await asyncio.gather(*racing)) == [False] * 19 + [True]


async def test_purge_drops_expired_ids(store: Store) -> None:
    await add_tenant(store)
    assert await store.use_assertion_id("acme", "app", "old", NOW - 1, NOW - 100)
    assert await store.use_assertion_id("acme", "app", "edge", NOW, NOW - 100)
    assert await store.purge_expired(NOW) == 1
    # "edge" is still recorded: at NOW it is a replay.
    assert not await store.use_assertion_id("acme", "app", "edge", NOW + 60, NOW)
    assert await store.purge_expired(NOW) == 0


async def test_deleting_a_tenant_drops_its_ids_only(store: Store) -> None:
    await populate(store, "acme")
    await populate(store, "globex")
    assert await store.delete_tenant("acme")
    await add_tenant(store, "acme")
    assert await store.use_assertion_id("acme", "app", "assertion-1", LATER, NOW)
    assert not await store.use_assertion_id("globex", "app", "assertion-1", LATER, NOW)
