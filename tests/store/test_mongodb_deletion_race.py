"""A registration or grant write that overlaps a tenant's deletion on MongoDB leaves no
rows behind for a new tenant of that id.

The write's transaction reads the tenant in a snapshot taken before the deletion
commits; the whole deletion (configuration, then data in chunks, then the marker) runs;
only then does the write write. Reads never conflict in MongoDB, so without a document
that both write (``app.store.mongodb.write_shards``) the write would commit its rows
after the deletion's chunks had gone by. With it, the write meets a write conflict, is
retried, and finds the tenant gone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from pymongo.asynchronous.client_session import AsyncClientSession

from app.errors import NotFound
from app.models import Grant
from app.store.mongodb.store import MongoStore
from app.types import TenantId
from tests.store.records import NOW, add_tenant, credential, h
from tests.support.mongo import mongodb_store

TENANT = "acme"


@pytest.fixture
async def acme(tmp_path: Path) -> AsyncIterator[MongoStore]:
    async with mongodb_store(tmp_path, refresh_interval_s=3600) as store:
        await add_tenant(store, TENANT)
        yield store


def delete_after_the_first_read(store: MongoStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The first time a write's transaction has read its tenant, delete the tenant whole
    before the transaction goes on. The attempts that read the tenant, in order: 1 while
    it existed, 0 once it was gone."""
    check: Callable[[TenantId, AsyncClientSession], Awaitable[None]] = store._require_tenant
    attempts: list[int] = []

    async def read_then_deleted(tenant_id: TenantId, session: AsyncClientSession) -> None:
        try:
            await check(tenant_id, session)
        except NotFound:
            attempts.append(0)
            raise
        attempts.append(1)
        if len(attempts) == 1:
            assert await store.delete_tenant(tenant_id)

    monkeypatch.setattr(store, "_require_tenant", read_then_deleted)
    return attempts


async def test_a_registration_overlapping_the_deletion_leaves_no_credential(
    acme: MongoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = delete_after_the_first_read(acme, monkeypatch)

    with pytest.raises(NotFound):
        await acme.register_credentials(TENANT, [credential(TENANT, "late")])

    assert attempts == [1, 0]  # a write conflict, and the retry found the tenant gone
    monkeypatch.undo()
    await add_tenant(acme, TENANT)
    assert await acme.find_credential(TENANT, h("late")) is None


async def test_a_grant_write_overlapping_the_deletion_leaves_no_grant(
    acme: MongoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = delete_after_the_first_read(acme, monkeypatch)

    with pytest.raises(NotFound):
        await acme.put_grant(Grant(TENANT, "g-late", "app", "alice", "openid", NOW))

    assert attempts == [1, 0]
    monkeypatch.undo()
    await add_tenant(acme, TENANT)
    assert await acme.get_grant(TENANT, "g-late") is None
