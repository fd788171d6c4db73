"""Failed client authentication counts (contract section 7), on every backend."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from app.store.base import Store
from tests.store.records import NOW, add_tenant, populate
from tests.store.test_assertion_ids import second_instance

WINDOW = NOW - NOW % 60
END = WINDOW + 60
CLIENT = "client 192.0.2.1 app"
ADDRESS = "address 192.0.2.1"


async def test_no_failures_count_zero_for_every_key(store: Store) -> None:
    await add_tenant(store)
    assert await store.auth_failures("acme", [CLIENT, ADDRESS], WINDOW) == [0, 0]
    assert await store.auth_failures("acme", [], WINDOW) == []


async def test_failures_count_per_key_in_their_window(store: Store) -> None:
    await add_tenant(store)
    for _ in range(3):
        await store.record_auth_failure("acme", [CLIENT, ADDRESS], WINDOW, END)
    await store.record_auth_failure("acme", [ADDRESS], WINDOW, END)
    assert await store.auth_failures("acme", [CLIENT, ADDRESS], WINDOW) == [3, 4]
    # The answer follows the order of the keys asked for.
    assert await store.auth_failures("acme", [ADDRESS, CLIENT], WINDOW) == [4, 3]
    # The next window starts from nothing; the previous one is not counted in it.
    assert await store.auth_failures("acme", [CLIENT, ADDRESS], END) == [0, 0]
    await store.record_auth_failure("acme", [CLIENT], END, END + 60)
    assert await store.auth_failures("acme", [CLIENT, ADDRESS], END) == [1, 0]
    assert await store.auth_failures("acme", [CLIENT, ADDRESS], WINDOW) == [3, 4]


async def test_counts_are_per_tenant(store: Store) -> None:
    for tenant_id in ("acme", "globex"):
        await add_tenant(store, tenant_id)
    await store.record_auth_failure("acme", [CLIENT, ADDRESS], WINDOW, END)
    assert await store.auth_failures("globex", [CLIENT, ADDRESS], WINDOW) == [0, 0]
    assert await store.auth_failures("acme", [CLIENT, ADDRESS], WINDOW) == [1, 1]


async def test_concurrent_failures_are_all_counted(store: Store) -> None:
    await add_tenant(store)
    failures = [
        store.record_auth_failure("acme", [CLIENT, ADDRESS], WINDOW, END) for _ in range(25)
    ]
    await asyncio.gather(*failures)
    assert await store.auth_failures("acme", [CLIENT, ADDRESS], WINDOW) == [25, 25]


async def test_instances_sharing_the_store_share_the_counts(store: Store) -> None:
    await add_tenant(store)
    async with second_instance(store) as other:
        # Both instances insert the first count of new keys at once, then go on.
        racing = [
            instance.record_auth_failure("acme", [CLIENT, ADDRESS], WINDOW, END)
            for instance in [store, other] * 10
        ]
        await asyncio.gather(*racing)
        assert await store.auth_failures("acme", [CLIENT, ADDRESS], WINDOW) == [20, 20]
        assert await other.auth_failures("acme", [CLIENT, ADDRESS], WINDOW) == [20, 20]


async def changed(read: Callable[[], int | None], old: int | None) -> int:
    """The stamp once it is not ``old`` (nor None): another instance's failure arrives
    asynchronously on MongoDB (its change stream), at once on SQLite."""
    deadline = time.monotonic() + 10
    while (value := read()) is None or value == old:
        assert time.monotonic() < deadline, "the stamp did not move"
        await asyncio.sleep(0.01)
    return value


async def test_the_stamp_moves_when_any_instance_counts_a_failure(store: Store) -> None:
    await add_tenant(store)
    async with second_instance(store) as other:
        before = await changed(lambda: store.auth_failures_stamp("acme", ADDRESS), None)
        untouched = store.auth_failures_stamp("acme", CLIENT)
        await other.record_auth_failure("acme", [ADDRESS], WINDOW, END)
        after = await changed(lambda: store.auth_failures_stamp("acme", ADDRESS), before)
        # The instance's own failure moves it at once.
        await store.record_auth_failure("acme", [ADDRESS], WINDOW + 60, END + 60)
        assert store.auth_failures_stamp("acme", ADDRESS) not in (before, after)
        # Another key keeps its stamp (these two do not share a slot on SQLite).
        assert store.auth_failures_stamp("acme", CLIENT) == untouched


async def test_purge_drops_counts_of_windows_that_ended(store: Store) -> None:
    await add_tenant(store)
    await store.record_auth_failure("acme", [CLIENT, ADDRESS], WINDOW - 60, WINDOW)
    await store.record_auth_failure("acme", [CLIENT], WINDOW, END)
    assert await store.purge_expired(WINDOW + 1) == 2
    assert await store.auth_failures("acme", [CLIENT, ADDRESS], WINDOW - 60) == [0, 0]
    assert await store.auth_failures("acme", [CLIENT, ADDRESS], WINDOW) == [1, 0]
    assert await store.purge_expired(WINDOW + 1) == 0


async def test_deleting_a_tenant_drops_its_counts_only(store: Store) -> None:
    await populate(store, "acme")
    await populate(store, "globex")
    await store.record_auth_failure("acme", [CLIENT], WINDOW, END)
    await store.record_auth_failure("globex", [CLIENT], WINDOW, END)
    assert await store.delete_tenant("acme")
    await add_tenant(store, "acme")
    assert await store.auth_failures("acme", [CLIENT], WINDOW) == [0]
    assert await store.auth_failures("globex", [CLIENT], WINDOW) == [1]
