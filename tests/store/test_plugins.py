"""Tenant plugins: numbered versions per name, one current, per tenant, bumping
config_version; plus how each backend lets other processes and instances see a change."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.errors import NotFound
from app.models import PluginVersion
from app.store.base import Store
from app.store.mongodb.store import MongoStore
from app.store.sqlite import config_stamp
from app.store.sqlite.store import SqliteStore
from tests.store.records import NOW, add_tenant, plugin, populate
from tests.support.mongo import mongodb_store
from tests.support.secantus import shared_server

WAIT_S = 10.0


async def upload(store: Store, tenant_id: str, name: str, n: int) -> PluginVersion:
    """The ``n``th distinct upload of ``name`` (its source says which)."""
    return await store.add_plugin_version(
        plugin(tenant_id, name, f"def before_revocation(ctx):\n    return {n}\n")
    )


def summary(versions: list[PluginVersion]) -> list[tuple[str, int, bool]]:
    return [(p.name, p.version, p.current) for p in versions]


# --- versions -----------------------------------------------------------------------------


async def test_the_first_upload_is_version_1_and_current(store: Store) -> None:
    await add_tenant(store, "acme")
    upload_ = plugin(
        "acme",
        "audit",
        "# é\ndef before_revocation(ctx):\n    pass\n",
        hooks=("before_introspection", "before_revocation"),
        uploaded_by="key:k1",
        uploaded_at=NOW + 7,
        version=42,
        current=False,
    )

    stored = await store.add_plugin_version(upload_)

    assert stored.version == 1
    assert stored.current is True
    assert stored.source == upload_.source
    assert stored.sha256 == upload_.sha256
    assert stored.hooks == ("before_introspection", "before_revocation")
    assert stored.uploaded_by == "key:k1"
    assert stored.uploaded_at == NOW + 7
    assert await store.get_plugin_version("acme", "audit") == stored
    assert await store.get_plugin_version("acme", "audit", 1) == stored
    assert await store.list_plugin_versions("acme", "audit") == [stored]
    assert await store.list_plugins("acme") == [stored]


async def test_a_plugin_without_hooks_round_trips(store: Store) -> None:
    await add_tenant(store, "acme")
    stored = await store.add_plugin_version(plugin("acme", hooks=()))
    assert stored.hooks == ()
    assert await store.get_plugin_version("acme", "audit") == stored


async def test_a_new_upload_is_the_next_version_and_current(store: Store) -> None:
    await add_tenant(store, "acme")
    first = await upload(store, "acme", "audit", 1)
    second = await upload(store, "acme", "audit", 2)

    assert (second.version, second.current) == (2, True)
    assert await store.get_plugin_version("acme", "audit") == second
    assert await store.get_plugin_version("acme", "audit", 2) == second
    kept = await store.get_plugin_version("acme", "audit", 1)
    assert kept is not None
    assert kept.current is False
    assert kept.source == first.source
    assert summary(await store.list_plugin_versions("acme", "audit")) == [
        ("audit", 1, False),
        ("audit", 2, True),
    ]
    assert await store.list_plugins("acme") == [second]


async def test_absent_plugins_and_versions_are_none(store: Store) -> None:
    await add_tenant(store, "acme")
    await upload(store, "acme", "audit", 1)
    assert await store.get_plugin_version("acme", "audit", 2) is None
    assert await store.get_plugin_version("acme", "other") is None
    assert await store.get_plugin_version("acme", "other", 1) is None
    assert await store.list_plugin_versions("acme", "other") == []


async def test_list_plugins_has_the_current_version_of_each_name_by_name(store: Store) -> None:
    await add_tenant(store, "acme")
    assert await store.list_plugins("acme") == []
    for name, n in (("zeta", 1), ("audit", 1), ("zeta", 2), ("metrics", 1), ("audit", 2)):
        await upload(store, "acme", name, n)
    await upload(store, "acme", "zeta", 3)

    assert summary(await store.list_plugins("acme")) == [
        ("audit", 2, True),
        ("metrics", 1, True),
        ("zeta", 3, True),
    ]


async def test_concurrent_uploads_of_one_name_take_distinct_versions(store: Store) -> None:
    await add_tenant(store, "acme")
    stored = await asyncio.gather(*(upload(store, "acme", "audit", n) for n in range(6)))

    assert sorted(p.version for p in stored) == [1, 2, 3, 4, 5, 6]
    versions = await store.list_plugin_versions("acme", "audit")
    assert [p.version for p in versions] == [1, 2, 3, 4, 5, 6]
    assert sum(p.current for p in versions) == 1


# --- rollback and deletion ------------------------------------------------------------------


async def test_set_current_rolls_back_and_forward(store: Store) -> None:
    await add_tenant(store, "acme")
    for n in (1, 2, 3):
        await upload(store, "acme", "audit", n)

    assert await store.set_current_plugin_version("acme", "audit", 1) is True
    current = await store.get_plugin_version("acme", "audit")
    assert current is not None
    assert current.version == 1
    assert summary(await store.list_plugin_versions("acme", "audit")) == [
        ("audit", 1, True),
        ("audit", 2, False),
        ("audit", 3, False),
    ]
    assert summary(await store.list_plugins("acme")) == [("audit", 1, True)]

    assert await store.set_current_plugin_version("acme", "audit", 1) is True  # already
    assert await store.set_current_plugin_version("acme", "audit", 3) is True
    assert summary(await store.list_plugins("acme")) == [("audit", 3, True)]

    # An upload after a rollback numbers after the highest kept, and is current.
    await store.set_current_plugin_version("acme", "audit", 2)
    assert (await upload(store, "acme", "audit", 4)).version == 4
    assert summary(await store.list_plugins("acme")) == [("audit", 4, True)]


async def test_set_current_of_a_missing_version_changes_nothing(store: Store) -> None:
    await add_tenant(store, "acme")
    await upload(store, "acme", "audit", 1)
    await upload(store, "acme", "audit", 2)
    before = await store.list_plugin_versions("acme", "audit")

    assert await store.set_current_plugin_version("acme", "audit", 3) is False
    assert await store.set_current_plugin_version("acme", "audit", 0) is False
    assert await store.set_current_plugin_version("acme", "other", 1) is False

    assert await store.list_plugin_versions("acme", "audit") == before
    assert await store.list_plugin_versions("acme", "other") == []


async def test_delete_plugin_removes_every_version(store: Store) -> None:
    await add_tenant(store, "acme")
    await upload(store, "acme", "audit", 1)
    await upload(store, "acme", "audit", 2)
    kept = await upload(store, "acme", "metrics", 1)

    assert await store.delete_plugin("acme", "audit") is True

    assert await store.get_plugin_version("acme", "audit") is None
    assert await store.get_plugin_version("acme", "audit", 1) is None
    assert await store.list_plugin_versions("acme", "audit") == []
    assert await store.list_plugins("acme") == [kept]
    assert await store.delete_plugin("acme", "audit") is False
    # All versions are gone: a new upload starts again at 1.
    assert (await upload(store, "acme", "audit", 3)).version == 1


# --- tenants ----------------------------------------------------------------------------------


async def test_plugins_never_cross_tenants(store: Store) -> None:
    await add_tenant(store, "acme")
    await add_tenant(store, "globex")
    await upload(store, "acme", "audit", 1)
    mine = await upload(store, "acme", "audit", 2)

    assert await store.get_plugin_version("globex", "audit") is None
    assert await store.get_plugin_version("globex", "audit", 1) is None
    assert await store.list_plugin_versions("globex", "audit") == []
    assert await store.list_plugins("globex") == []
    assert await store.set_current_plugin_version("globex", "audit", 1) is False
    assert await store.delete_plugin("globex", "audit") is False

    theirs = await upload(store, "globex", "audit", 9)
    assert theirs.version == 1  # numbered per tenant
    assert await store.list_plugins("acme") == [mine]
    assert await store.list_plugins("globex") == [theirs]
    assert await store.delete_plugin("globex", "audit") is True
    assert await store.list_plugins("acme") == [mine]
    assert len(await store.list_plugin_versions("acme", "audit")) == 2


async def test_plugin_writes_for_an_unknown_tenant_are_not_found(store: Store) -> None:
    await add_tenant(store, "acme")
    await upload(store, "acme", "audit", 1)
    await store.delete_tenant("acme")

    for tenant_id in ("globex", "acme"):
        with pytest.raises(NotFound, match="unknown tenant"):
            await store.add_plugin_version(plugin(tenant_id))
        with pytest.raises(NotFound, match="unknown tenant"):
            await store.set_current_plugin_version(tenant_id, "audit", 1)
        with pytest.raises(NotFound, match="unknown tenant"):
            await store.delete_plugin(tenant_id, "audit")
        assert await store.list_plugins(tenant_id) == []


async def test_delete_tenant_removes_its_plugins_only(store: Store) -> None:
    await populate(store, "acme")
    await upload(store, "acme", "metrics", 1)
    await upload(store, "acme", "metrics", 2)
    globex = await populate(store, "globex")

    assert await store.delete_tenant("acme") is True

    await add_tenant(store, "acme")
    assert await store.list_plugins("acme") == []
    assert await store.list_plugin_versions("acme", "metrics") == []
    assert await store.get_plugin_version("acme", "metrics", 1) is None
    assert (await upload(store, "acme", "metrics", 3)).version == 1
    assert await store.list_plugins("globex") == [globex.plugin]


# --- configuration version ------------------------------------------------------------------


async def test_config_version_changes_on_plugin_writes(store: Store) -> None:
    await add_tenant(store, "acme")
    versions = [await store.config_version()]
    await upload(store, "acme", "audit", 1)
    versions.append(await store.config_version())
    await upload(store, "acme", "audit", 2)
    versions.append(await store.config_version())
    await store.set_current_plugin_version("acme", "audit", 1)
    versions.append(await store.config_version())
    await store.delete_plugin("acme", "audit")
    versions.append(await store.config_version())
    assert len(set(versions)) == len(versions)


@pytest.fixture
def no_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    """No periodic re-read: only the stamp can announce a change."""
    monkeypatch.setattr(config_stamp, "RECHECK_S", 3600.0)


@pytest.fixture
async def two_sqlite(tmp_path: Path, no_recheck: None) -> AsyncIterator[tuple[Store, Store]]:
    path = tmp_path / "store.sqlite3"
    one, two = SqliteStore(path), SqliteStore(path)
    await one.open()
    await two.open()
    try:
        yield one, two
    finally:
        await two.close()
        await one.close()


@pytest.fixture
async def two_mongodb(tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    async with mongodb_store(tmp_path, refresh_interval_s=3600) as one:
        assert isinstance(one, MongoStore)
        two = MongoStore(shared_server().uri, one._database_name, refresh_interval_s=3600)
        await two.open()
        try:
            yield one, two
        finally:
            await two.close()


@pytest.fixture(params=["sqlite", "mongodb"])
def two_stores(request: pytest.FixtureRequest) -> tuple[Store, Store]:
    """Two stores on one database: two worker processes, or two instances."""
    stores: tuple[Store, Store] = request.getfixturevalue(f"two_{request.param}")
    return stores


async def test_a_plugin_change_through_one_store_moves_the_version_of_another(
    two_stores: tuple[Store, Store],
) -> None:
    one, two = two_stores
    await add_tenant(one, "acme")
    for change in (
        lambda: upload(one, "acme", "audit", 1),
        lambda: upload(one, "acme", "audit", 2),
        lambda: one.set_current_plugin_version("acme", "audit", 1),
        lambda: one.delete_plugin("acme", "audit"),
    ):
        seen = await two.config_version()
        await change()
        await moved(two, seen)
    await upload(one, "acme", "audit", 3)
    assert summary(await two.list_plugins("acme")) == [("audit", 1, True)]


async def moved(store: Store, seen: int) -> None:
    """Wait (bounded) until ``store``'s config version is no longer ``seen``: at once on
    SQLite, as soon as the change stream delivers on MongoDB."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while await store.config_version() == seen:
        if loop.time() > deadline:
            pytest.fail(f"config_version stayed {seen} for {WAIT_S}s")
        await asyncio.sleep(0.02)
