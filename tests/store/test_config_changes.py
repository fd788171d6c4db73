"""``config_changes_since``: which tenants' configuration changed after a version."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from app.models import SigningKey
from app.store.base import Store
from app.store.mongodb.store import MongoStore
from app.store.sqlite import config_changes
from app.store.sqlite.store import SqliteStore
from app.types import TenantId
from tests.store.records import NOW, add_tenant, client, issuer, tenant
from tests.store.test_assertion_ids import second_instance


async def eventually_named(
    store: Store, since: int, wanted: set[str]
) -> tuple[int, frozenset[TenantId]]:
    """The answer once it names ``wanted``: another instance's change arrives
    asynchronously on MongoDB (its change stream), at once on SQLite."""
    deadline = time.monotonic() + 10
    while True:
        await store.config_version()
        answer = await store.config_changes_since(since)
        assert answer is not None
        if wanted <= answer[1]:
            return answer
        assert time.monotonic() < deadline, f"{wanted} not named: {answer}"
        await asyncio.sleep(0.01)


async def caught_up(store: Store) -> None:
    """Return once ``store`` has heard of every configuration change made before: on
    MongoDB the change stream reports even this instance's writes once more, later; a
    marker tenant written by another instance arrives after them."""
    before = await store.config_version()
    async with second_instance(store) as other:
        await add_tenant(other, "marker")
    await eventually_named(store, before, {"marker"})


async def test_nothing_changed_since_the_current_version(store: Store) -> None:
    await add_tenant(store, "acme")
    version = await store.config_version()
    assert await store.config_changes_since(version) == (version, frozenset())


async def test_the_changed_tenants_are_named(store: Store) -> None:
    await add_tenant(store, "acme")
    await add_tenant(store, "globex")
    await add_tenant(store, "initech")
    await caught_up(store)
    before = await store.config_version()
    await store.put_client(client("acme"))
    await store.delete_client("globex", "nobody")  # nothing deleted: no change
    await store.put_client(client("globex"))
    await store.delete_client("globex", "app")
    answer = await store.config_changes_since(before)
    assert answer is not None
    version, tenants = answer
    assert tenants == {"acme", "globex"}
    assert version >= await store.config_version() > before


async def put_tenant(store: Store) -> object:
    return await store.put_tenant(tenant("acme"), [issuer("acme"), "https://alias.example"])


async def delete_tenant(store: Store) -> object:
    return await store.delete_tenant("acme")


async def add_signing_key(store: Store) -> object:
    key = SigningKey("acme", "kid-1", "ES256", {"kty": "EC"}, b"sealed", NOW)
    return await store.add_signing_key(key, None)


@pytest.mark.parametrize("change", [put_tenant, delete_tenant, add_signing_key])
async def test_every_kind_of_change_names_its_tenant(
    store: Store, change: Callable[[Store], Awaitable[object]]
) -> None:
    await add_tenant(store, "acme")
    before = await store.config_version()
    await change(store)
    answer = await store.config_changes_since(before)
    assert answer is not None
    assert answer[1] == {"acme"}


async def test_another_instances_changes_and_deletes_are_named(store: Store) -> None:
    await add_tenant(store, "acme")
    await add_tenant(store, "globex")
    async with second_instance(store) as other:
        start = await store.config_version()
        await other.put_client(client("globex"))
        before, _ = await eventually_named(store, start, {"globex"})
        await other.delete_client("globex", "app")
        await other.delete_tenant("acme")
        _, tenants = await eventually_named(store, before, {"globex", "acme"})
        assert tenants == {"globex", "acme"}


async def test_a_version_not_reached_yet_is_unknown(store: Store) -> None:
    """A restored backup's version can be behind what a cache holds."""
    await add_tenant(store, "acme")
    version = await store.config_version()
    assert await store.config_changes_since(version + 5) is None


async def test_sqlite_changes_older_than_the_log_are_unknown(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not isinstance(store, SqliteStore):
        pytest.skip("the SQLite log")
    monkeypatch.setattr(config_changes, "KEPT", 4)
    monkeypatch.setattr(config_changes, "PRUNE_EVERY", 2)
    await add_tenant(store, "acme")
    first = await store.config_version()
    for n in range(6):
        await store.put_client(client("acme", f"app{n}"))
    current = await store.config_version()
    assert await store.config_changes_since(first) is None
    assert await store.config_changes_since(current - 2) == (current, frozenset({"acme"}))


async def test_mongodb_a_change_without_a_tenant_is_unknown(store: Store) -> None:
    if not isinstance(store, MongoStore):
        pytest.skip("the MongoDB change stream")
    await add_tenant(store, "acme")
    before = await store.config_version()
    assert store._watcher is not None
    store._watcher.bump()  # what a reopened or lost stream does
    assert await store.config_changes_since(before) is None
    after = await store.config_version()
    await store.put_client(client("acme"))
    answer = await store.config_changes_since(after)
    assert answer is not None
    assert answer[0] > after
    assert answer[1] == {"acme"}
