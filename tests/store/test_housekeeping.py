"""Readiness, the configuration version, and purging expired records."""

from __future__ import annotations

from app.models import DenyEntry, RevocationPlan
from app.store.base import Store
from tests.store.records import NOW, add_tenant, credential, h, revoke_token


async def test_ping_answers(store: Store) -> None:
    await store.ping()


async def test_config_version_is_a_number_that_reads_the_same_twice(store: Store) -> None:
    version = await store.config_version()
    assert isinstance(version, int)
    assert await store.config_version() == version


async def deny(store: Store, tenant_id: str, key: str, exp: int) -> None:
    plan = RevocationPlan(NOW, "token", primary_deny=DenyEntry(key, exp))
    assert (await store.apply_revocation(tenant_id, plan)).applied


async def test_purge_expired_drops_what_expired_before(store: Store) -> None:
    for tenant_id in ("acme", "globex"):
        await add_tenant(store, tenant_id)
        await store.register_credentials(
            tenant_id,
            [
                credential(tenant_id, "old", exp=NOW - 10),
                credential(tenant_id, "old-revoked", exp=NOW - 1),
                credential(tenant_id, "edge", exp=NOW),
                credential(tenant_id, "live", exp=NOW + 10),
            ],
        )
        await store.apply_revocation(tenant_id, revoke_token("old-revoked", at=NOW - 5))
        await deny(store, tenant_id, "old-jti", NOW - 1)
        await deny(store, tenant_id, "edge-jti", NOW)

    assert await store.purge_expired(NOW) == 6

    for tenant_id in ("acme", "globex"):
        for token in ("old", "old-revoked"):
            assert await store.find_credential(tenant_id, h(token)) is None
        for token in ("edge", "live"):
            assert await store.find_credential(tenant_id, h(token)) is not None
        assert not await store.is_denied(tenant_id, "old-jti")
        assert await store.is_denied(tenant_id, "edge-jti")
    assert await store.purge_expired(NOW) == 0
