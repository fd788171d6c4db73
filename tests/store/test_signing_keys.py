"""The tenant's own signing keys: one current key per tenant, a first use that two
writers race for, rotation, dropping retired keys, re-sealing; configuration, so every
write moves config_version; per tenant."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from app.errors import NotFound
from app.models import SigningKey
from app.store.base import Store
from tests.store.records import NOW, add_tenant


def key(tenant_id: str, kid: str, created_at: int = NOW) -> SigningKey:
    return SigningKey(
        tenant_id=tenant_id,
        kid=kid,
        alg="ES256",
        public_jwk={"kty": "EC", "crv": "P-256", "x": kid, "y": kid, "kid": kid},
        sealed_private=b"sealed:" + kid.encode(),
        created_at=created_at,
    )


def kids(keys: list[SigningKey]) -> list[tuple[str, int | None]]:
    return [(k.kid, k.retire_at) for k in keys]


async def test_a_tenant_has_no_key_until_the_first_is_added(store: Store) -> None:
    await add_tenant(store, "acme")
    assert await store.list_signing_keys("acme") == []

    first = key("acme", "k1")
    stored = await store.add_signing_key(first, None)

    assert stored == first
    assert await store.list_signing_keys("acme") == [first]


async def test_a_first_use_keeps_the_current_key_when_there_is_one(store: Store) -> None:
    await add_tenant(store, "acme")
    first = await store.add_signing_key(key("acme", "k1"), None)

    again = await store.add_signing_key(key("acme", "k2", NOW + 1), None)

    assert again == first
    assert await store.list_signing_keys("acme") == [first]


async def test_of_two_racing_first_uses_one_key_wins_for_both(store: Store) -> None:
    await add_tenant(store, "acme")
    results = await asyncio.gather(
        *(store.add_signing_key(key("acme", f"k{n}"), None) for n in range(4))
    )
    assert len({r.kid for r in results}) == 1
    assert kids(await store.list_signing_keys("acme")) == [(results[0].kid, None)]


async def test_rotation_retires_the_current_key_and_lists_current_then_newest(
    store: Store,
) -> None:
    await add_tenant(store, "acme")
    await store.add_signing_key(key("acme", "k1"), None)
    second = await store.add_signing_key(key("acme", "k2", NOW + 10), NOW + 100)
    await store.add_signing_key(key("acme", "k3", NOW + 20), NOW + 200)

    assert second.kid == "k2" and second.retire_at is None
    listed = await store.list_signing_keys("acme")
    assert kids(listed) == [("k3", None), ("k2", NOW + 200), ("k1", NOW + 100)]
    assert listed[0] == key("acme", "k3", NOW + 20)


async def test_a_rotation_without_a_current_key_adds_one(store: Store) -> None:
    await add_tenant(store, "acme")
    await store.add_signing_key(key("acme", "k1"), NOW + 100)
    assert kids(await store.list_signing_keys("acme")) == [("k1", None)]


async def test_dropping_takes_only_keys_retired_before_the_cutoff(store: Store) -> None:
    await add_tenant(store, "acme")
    await store.add_signing_key(key("acme", "k1"), None)
    await store.add_signing_key(key("acme", "k2", NOW + 1), NOW + 100)
    await store.add_signing_key(key("acme", "k3", NOW + 2), NOW + 200)

    assert await store.drop_retired_signing_keys("acme", NOW + 100) == 0
    assert await store.drop_retired_signing_keys("acme", NOW + 101) == 1
    assert kids(await store.list_signing_keys("acme")) == [("k3", None), ("k2", NOW + 200)]
    assert await store.drop_retired_signing_keys("acme", NOW * 2) == 1
    assert kids(await store.list_signing_keys("acme")) == [("k3", None)]


async def test_reseal_replaces_only_the_seal_that_was_read(store: Store) -> None:
    await add_tenant(store, "acme")
    stored = await store.add_signing_key(key("acme", "k1"), None)

    assert await store.reseal_signing_key(stored, b"sealed again") is True
    assert await store.reseal_signing_key(stored, b"stale") is False
    assert await store.list_signing_keys("acme") == [
        replace(stored, sealed_private=b"sealed again")
    ]


async def test_keys_are_per_tenant(store: Store) -> None:
    await add_tenant(store, "acme")
    await add_tenant(store, "globex")
    await store.add_signing_key(key("acme", "k1"), None)
    await store.add_signing_key(key("acme", "k2", NOW + 1), NOW + 100)

    assert await store.list_signing_keys("globex") == []
    assert await store.drop_retired_signing_keys("globex", NOW * 2) == 0
    globex = await store.add_signing_key(replace(key("globex", "k1"), sealed_private=b"g"), None)
    assert globex.tenant_id == "globex"
    assert kids(await store.list_signing_keys("acme")) == [("k2", None), ("k1", NOW + 100)]
    assert await store.reseal_signing_key(replace(globex, tenant_id="acme"), b"x") is False


async def test_writes_need_the_tenant(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.add_signing_key(key("nobody", "k1"), None)
    with pytest.raises(NotFound):
        await store.add_signing_key(key("nobody", "k1"), NOW)
    assert await store.list_signing_keys("nobody") == []


async def test_every_key_write_moves_config_version(store: Store) -> None:
    await add_tenant(store, "acme")
    versions = [await store.config_version()]
    first = await store.add_signing_key(key("acme", "k1"), None)
    versions.append(await store.config_version())
    await store.add_signing_key(key("acme", "k2", NOW + 1), NOW + 100)
    versions.append(await store.config_version())
    await store.reseal_signing_key(replace(first, retire_at=NOW + 100), b"again")
    versions.append(await store.config_version())
    await store.drop_retired_signing_keys("acme", NOW * 2)
    versions.append(await store.config_version())
    assert len(set(versions)) == len(versions)


async def test_deleting_a_tenant_deletes_its_keys(store: Store) -> None:
    await add_tenant(store, "acme")
    await store.add_signing_key(key("acme", "k1"), None)

    assert await store.delete_tenant("acme") is True
    await add_tenant(store, "acme")

    assert await store.list_signing_keys("acme") == []
