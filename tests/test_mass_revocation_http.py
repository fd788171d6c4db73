"""Mass revocation through HTTP, on both stores: ``token_type_hint=all`` and a subject's
withdrawal of a client over more credentials than one chunk of a sweep, whole as soon as
they are answered; interrupted, whole all the same as introspection sees it, on any
instance, and finished by housekeeping."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from app import housekeeping
from app.errors import StoreUnavailable
from app.services import Services
from app.store.base import Store
from app.store.mongodb import store as mongodb_store
from app.store.mongodb import sweeps as mongodb_sweeps
from app.store.mongodb.store import MongoStore
from app.store.sqlite import store as sqlite_store
from app.store.sqlite.store import SqliteStore
from tests.support.secantus import shared_server
from tests.support.world import OPERATOR, World, make_world

CHUNK = 7
MANY = 50
T = int(time.time())
"""The service's clock in these tests, so that ``iat`` can be placed around a revocation."""


@pytest.fixture
async def world(
    http: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> World:
    monkeypatch.setattr(sqlite_store, "SWEEP_CHUNK", CHUNK)
    monkeypatch.setattr(mongodb_store, "SWEEP_CHUNK", CHUNK)
    services.clock = lambda: T
    world = await make_world(http, revocation={"allow_revoke_all": True})
    mine = [
        {"token": f"app-{i}", "type": ("access_token", "refresh_token")[i % 2], "client_id": "app"}
        for i in range(MANY)
    ]
    subjects = [{**c, "sub": "alice" if i % 2 else "bob"} for i, c in enumerate(mine)]
    others = [{"token": "other-1", "type": "access_token", "client_id": "other", "sub": "alice"}]
    await world.tenant.register(*subjects, *others)
    return world


APP = [f"app-{i}" for i in range(MANY)]
ALICE = APP[1::2]


async def active(world: World, tokens: list[str]) -> list[str]:
    return [token for token in tokens if await world.active(token)]


async def test_revoke_all_over_many_chunks_is_whole_when_answered(world: World) -> None:
    r = await world.tenant.revoke("anything", auth=world.app, token_type_hint="all")

    assert r.status_code == 200
    assert await active(world, APP) == []
    assert await active(world, ["other-1"]) == ["other-1"]
    [event] = await world.tenant.events()
    assert (event["cause"], event["count"], event["client_id"]) == ("all", MANY, "app")


async def test_a_withdrawal_over_many_chunks_is_whole_when_answered(world: World) -> None:
    r = await world.tenant.http.delete(
        "/admin/v1/tenants/acme/subjects/alice/clients/app", headers=OPERATOR
    )

    assert r.status_code == 200
    assert r.json() == {"revoked": len(ALICE)}
    assert await active(world, ALICE) == []
    assert await active(world, [*APP[0::2], "other-1"]) == [*APP[0::2], "other-1"]


def stop_after_the_first_chunk(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep's process dies once it has committed and written one chunk."""

    async def stopped(*args: Any) -> Any:
        raise StoreUnavailable("the process stopped")

    if isinstance(store, SqliteStore):
        monkeypatch.setattr(store, "_sweep", stopped)
        return
    chunk = mongodb_sweeps._chunk
    calls = 0

    async def once(*args: Any) -> bool:
        nonlocal calls
        calls += 1
        if calls > 1:
            await stopped()
        return await chunk(*args)

    monkeypatch.setattr(mongodb_sweeps, "_chunk", once)


@asynccontextmanager
async def another_instance(store: Store) -> AsyncIterator[Store]:
    """A second store on the same data, as another worker or instance has."""
    if isinstance(store, SqliteStore):
        other = SqliteStore(store.path)
        await other.open()
        try:
            yield other
        finally:
            await other.close()
        return
    assert isinstance(store, MongoStore)
    other_instance = MongoStore(shared_server().uri, store._database_name)
    await other_instance.open()
    try:
        yield other_instance
    finally:
        await other_instance.close()


async def test_an_interrupted_revoke_all_is_whole_everywhere_and_housekeeping_finishes_it(
    world: World, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop_after_the_first_chunk(services.store, monkeypatch)
    r = await world.tenant.revoke("anything", auth=world.app, token_type_hint="all")
    assert r.status_code == 503
    monkeypatch.undo()
    services.clock = lambda: T

    assert await active(world, APP) == []
    assert await active(world, ["other-1"]) == ["other-1"]
    async with another_instance(services.store) as other:
        assert await states(services, other, APP) == [(T, "all")] * MANY
    assert await world.tenant.events() == []
    # Issued before the revocation, registered after: inactive; issued after: active.
    await world.tenant.register(
        {"token": "before", "type": "access_token", "client_id": "app", "iat": T - 1},
        {"token": "after", "type": "access_token", "client_id": "app", "iat": T + 1},
    )

    assert await housekeeping.finish_sweeps(services, idle_s=0) == 1

    [event] = await world.tenant.events()
    assert (event["cause"], event["count"]) == ("all", MANY)
    assert await active(world, [*APP, "before", "after"]) == ["after"]
    assert await housekeeping.finish_sweeps(services, idle_s=0) == 0


async def states(
    services: Services, store: Store, tokens: list[str]
) -> list[tuple[int | None, str | None]]:
    """(``revoked_at``, ``revoked_cause``) of each token as ``store`` reads it."""
    tenant = await services.store.get_tenant("acme")
    assert tenant is not None
    found = []
    for token in tokens:
        token_hash = services.keys.token_hashes("acme", tenant.key_salt, token)[0]
        credential = await store.find_credential("acme", token_hash)
        assert credential is not None
        found.append((credential.revoked_at, credential.revoked_cause))
    return found
