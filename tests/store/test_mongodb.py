"""What only the MongoDB backend has: indexes, TTL, transactions under contention, change
streams between instances, and a server that goes away and comes back.

The backend-independent behaviour is in the contract tests, which run on MongoDB too.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from app.errors import Conflict, StoreUnavailable
from app.models import (
    ByGrant,
    ByHash,
    Client,
    ClientType,
    Credential,
    DenyEntry,
    EventDraft,
    RevocationPlan,
    Tenant,
    TokenType,
)
from app.store.mongodb import schema
from app.store.mongodb.store import MongoStore
from tests.store.records import add_tenant
from tests.support.mongo import mongodb_store
from tests.support.secantus import ServerProcess, fresh_database_name, shared_server

Document = dict[str, Any]
TENANT = "acme"
WAIT_S = 10.0
"""Upper bound of the bounded waits below: generous, since it only matters on failure."""
FAST_FAIL = "&serverSelectionTimeoutMS=300&timeoutMS=300"
"""Down-server tests need not wait the production 2 s for each call to give up."""


@pytest.fixture
async def mongo(tmp_path: Path) -> AsyncIterator[MongoStore]:
    """A store on a fresh database, without tenants."""
    async with mongodb_store(tmp_path, refresh_interval_s=3600) as store:
        yield store


@pytest.fixture
async def acme(mongo: MongoStore) -> MongoStore:
    """``mongo`` with the tenant ``TENANT``: data is written only for a tenant."""
    await add_tenant(mongo, TENANT)
    return mongo


@pytest.fixture
async def raw() -> AsyncIterator[AsyncMongoClient[Document]]:
    """A plain client on the shared server, to look at what the store wrote."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(shared_server().uri, tz_aware=True)
    yield client
    await client.close()


def token(n: int) -> bytes:
    return n.to_bytes(4, "big") * 8


def credential(n: int, **fields: Any) -> Credential:
    values: dict[str, Any] = {
        "type": TokenType.ACCESS_TOKEN,
        "client_id": "app",
        "exp": 10_000,
        "sub": "alice",
        "grant_id": "g1",
    }
    values.update(fields)
    return Credential(tenant_id=TENANT, token_hash=token(n), **values)


def client(client_id: str = "app") -> Client:
    return Client(TENANT, client_id, ClientType.PUBLIC, "none", created_at=1, updated_at=1)


def revoke(n: int, at: int = 100) -> RevocationPlan:
    return RevocationPlan(
        revoked_at=at,
        cause="grant",
        primary=token(n),
        selectors=(ByHash(token(n)), ByGrant("g1")),
        events=(EventDraft("revoked", "grant", at, client_id="app"),),
    )


def revoke_one(n: int) -> RevocationPlan:
    return RevocationPlan(
        revoked_at=100,
        cause="token",
        primary=token(n),
        selectors=(ByHash(token(n)),),
        events=(EventDraft("revoked", "token", 100),),
    )


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` with short awaits until it holds; fail after ``WAIT_S``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not await check():
        if loop.time() > deadline:
            pytest.fail(f"not within {WAIT_S}s: {what}")
        await asyncio.sleep(0.02)


# --- schema -------------------------------------------------------------------------------


async def test_open_creates_every_index_and_twice_is_fine(
    mongo: MongoStore, raw: AsyncMongoClient[Document]
) -> None:
    await mongo.open()  # the same instance again: no-op
    again = MongoStore(shared_server().uri, mongo._database_name)
    await again.open()  # another instance on the same database: finds them all there
    await again.close()
    db = raw[mongo._database_name]
    for name, indexes in schema.INDEXES.items():
        info = await db[name].index_information()
        for index in indexes:
            assert info[index.name]["key"] == [(key, 1) for key in index.keys], index
            assert info[index.name].get("unique", False) == index.unique, index
            if index.name != "issuer":
                assert index.keys[0] in ("tenant_id", schema.EXPIRE_AT), index


async def test_ttl_indexes_expire_credentials_and_deny_entries_after_retention(
    tmp_path: Path, raw: AsyncMongoClient[Document]
) -> None:
    async with mongodb_store(tmp_path, retention_s=3_600) as store:
        await add_tenant(store, TENANT)
        db = raw[store._database_name]
        for name in (schema.CREDENTIALS, schema.DENY_LIST):
            ttl = (await db[name].index_information())["ttl"]
            assert ttl["key"] == [(schema.EXPIRE_AT, 1)]
            assert ttl["expireAfterSeconds"] == 0

        await store.register_credentials(TENANT, [credential(1, exp=1_000_000)])
        plan = RevocationPlan(revoked_at=5, cause="token", primary_deny=DenyEntry("jti", 2_000))
        assert (await store.apply_revocation(TENANT, plan)).applied

        stored = await db[schema.CREDENTIALS].find_one({"tenant_id": TENANT})
        denied = await db[schema.DENY_LIST].find_one({"tenant_id": TENANT})
        assert stored is not None and denied is not None
        # A BSON date (the TTL monitor ignores anything else), exp + retention.
        assert stored[schema.EXPIRE_AT] == datetime.fromtimestamp(1_003_600, UTC)
        assert denied[schema.EXPIRE_AT] == datetime.fromtimestamp(5_600, UTC)


async def test_ttl_monitor_drops_only_what_is_past_retention(tmp_path: Path) -> None:
    """With the server's TTL monitor running (often here; each minute on mongod)."""
    with ServerProcess(tmp_path / "data", ttl_sweep_seconds=0.2) as server:
        store = MongoStore(server.uri, fresh_database_name(), retention_s=60)
        await store.open()
        try:
            await add_tenant(store, TENANT)
            now = int(datetime.now(UTC).timestamp())
            gone, kept = credential(1, exp=now - 61), credential(2, exp=now)
            await store.register_credentials(TENANT, [gone, kept])

            async def dropped() -> bool:
                return await store.find_credential(TENANT, gone.token_hash) is None

            await eventually(dropped, "the TTL monitor drops an old credential")
            assert await store.find_credential(TENANT, kept.token_hash) is not None
        finally:
            await store.close()


async def test_documents_keep_binary_arrays_and_embedded_documents(
    mongo: MongoStore, raw: AsyncMongoClient[Document]
) -> None:
    settings = {"issuer": "https://a.example", "revocation": {"cascade": "subject"}}
    await mongo.put_tenant(Tenant(TENANT, settings, b"\x00salt", 1, 1), ["https://a.example"])
    jwks = {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "abc"}]}
    await mongo.put_client(
        Client(TENANT, "c", ClientType.CONFIDENTIAL, "private_key_jwt", frozenset("ba"), jwks=jwks)
    )
    await mongo.register_credentials(TENANT, [credential(1, scope="read write")])

    db = raw[mongo._database_name]
    tenant = await db[schema.TENANTS].find_one({"tenant_id": TENANT})
    stored_client = await db[schema.CLIENTS].find_one({"tenant_id": TENANT})
    stored = await db[schema.CREDENTIALS].find_one({"tenant_id": TENANT})
    assert tenant is not None and stored_client is not None and stored is not None
    assert tenant["settings"] == settings and tenant["key_salt"] == b"\x00salt"
    assert stored_client["scope"] == ["a", "b"] and stored_client["jwks"] == jwks
    assert stored["token_hash"] == token(1) and isinstance(stored["token_hash"], bytes)
    assert (await mongo.get_client(TENANT, "c")) is not None


# --- transactions -------------------------------------------------------------------------


async def test_fifty_concurrent_revocations_of_one_token_apply_once(
    mongo: MongoStore, acme: MongoStore
) -> None:
    """Through two instances, so that transactions and write conflicts decide (within one
    instance, revocations of a tenant also queue up)."""
    other = MongoStore(shared_server().uri, mongo._database_name)
    await other.open()
    try:
        await mongo.register_credentials(TENANT, [credential(n) for n in range(5)])

        outcomes = await asyncio.gather(
            *(store.apply_revocation(TENANT, revoke(0)) for store in [mongo, other] * 25)
        )
    finally:
        await other.close()

    applied = [o for o in outcomes if o.applied]
    assert len(applied) == 1
    assert applied[0].count == 5
    events = await mongo.list_events(TENANT, 0, 100)
    assert [(e.id, e.count) for e in events] == [(1, 5)]


async def test_revocations_in_one_tenant_through_two_instances_all_apply(
    mongo: MongoStore,
    acme: MongoStore,
) -> None:
    other = MongoStore(shared_server().uri, mongo._database_name)
    await other.open()
    try:
        await mongo.register_credentials(
            TENANT, [credential(n, grant_id=f"g{n}") for n in range(40)]
        )
        plans = [
            RevocationPlan(
                revoked_at=100,
                cause="token",
                primary=token(n),
                selectors=(ByHash(token(n)),),
                events=(EventDraft("revoked", "token", 100),),
            )
            for n in range(40)
        ]
        outcomes = await asyncio.gather(
            *(
                store.apply_revocation(TENANT, p)
                for store, p in zip([mongo, other] * 20, plans, strict=True)
            )
        )
    finally:
        await other.close()

    assert all(o.applied and o.count == 1 for o in outcomes)
    ids = sorted(i for o in outcomes for i in o.event_ids)
    assert ids == list(range(1, 41))
    assert [e.id for e in await mongo.list_events(TENANT, 0, 100)] == ids


async def test_issuer_taken_by_another_tenant_in_a_concurrent_put_is_a_conflict(
    mongo: MongoStore,
) -> None:
    issuer = "https://shared.example"

    async def put(tenant_id: str) -> bool:
        try:
            await mongo.put_tenant(Tenant(tenant_id, {"issuer": issuer}, b"s", 1, 1), [issuer])
        except Conflict:
            return False
        return True

    results = await asyncio.gather(*(put(f"t{n}") for n in range(10)))

    assert results.count(True) == 1
    assert len(await mongo.list_tenants()) == 1


# --- configuration version ----------------------------------------------------------------


async def test_a_change_through_one_instance_moves_the_version_of_another(
    mongo: MongoStore,
) -> None:
    other = MongoStore(shared_server().uri, mongo._database_name, refresh_interval_s=3600)
    await other.open()
    try:
        for change in (
            lambda: mongo.put_tenant(Tenant(TENANT, {}, b"s", 1, 1), ["https://a.example"]),
            lambda: mongo.put_client(client()),
            lambda: mongo.delete_client(TENANT, "app"),
        ):
            seen = await other.config_version()
            mine = await mongo.config_version()
            await change()
            assert await mongo.config_version() != mine  # at once, for its own write

            async def moved(seen: int = seen) -> bool:
                return await other.config_version() != seen

            await eventually(moved, "the other instance sees the change")
    finally:
        await other.close()


async def test_close_stops_the_watcher(tmp_path: Path) -> None:
    async with mongodb_store(tmp_path) as store:
        assert any(t.get_name() == "mongodb-config-watcher" for t in asyncio.all_tasks())
    assert not any(t.get_name() == "mongodb-config-watcher" for t in asyncio.all_tasks())
    del store


# --- the server goes away -------------------------------------------------------------------


async def test_unavailable_while_the_server_is_down_and_back_when_it_returns(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path / "data")
    server.start()
    database = fresh_database_name()
    store = MongoStore(server.uri + FAST_FAIL, database, refresh_interval_s=3600)
    other = MongoStore(server.uri + FAST_FAIL, database, refresh_interval_s=3600)
    try:
        await store.open()
        await other.open()
        await add_tenant(store, TENANT)
        await store.register_credentials(TENANT, [credential(1), credential(2)])
        assert (await store.apply_revocation(TENANT, revoke(1))).applied

        server.kill()
        calls: list[Callable[[], Awaitable[object]]] = [
            store.ping,
            lambda: store.find_credential(TENANT, token(2)),
            lambda: store.apply_revocation(TENANT, revoke(2)),
            lambda: store.register_credentials(TENANT, [credential(3)]),
            lambda: store.put_client(client()),
            lambda: store.list_events(TENANT, 0, 10),
        ]
        for call in calls:
            with pytest.raises(StoreUnavailable):
                await call()
        await store.config_version()  # no I/O: still answers

        server.start()  # same port, same storage

        async def reachable() -> bool:
            try:
                await store.ping()
            except StoreUnavailable:
                return False
            return True

        await eventually(reachable, "the store reconnects")
        # What was committed before the crash is still there.
        revoked = await store.find_credential(TENANT, token(1))
        assert revoked is not None and revoked.revoked_at == 100
        assert [e.id for e in await store.list_events(TENANT, 0, 10)] == [1]

        # And the watcher of the other instance resumed: it sees changes made from now.
        async def watching() -> bool:
            return other.watching

        await eventually(watching, "the watcher reopens its change stream")
        seen = await other.config_version()
        await store.put_client(client())

        async def moved() -> bool:
            return await other.config_version() != seen

        await eventually(moved, "the watcher resumes after the restart")
    finally:
        await store.close()
        await other.close()
        server.stop()


# PyMongo 4.20's async client leaks the socket of a connection attempt it cancels when
# it is closed (``_async_create_connection`` closes it on OSError only); collected here so
# that the warning belongs to this test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_open_fails_fast_when_no_server_answers(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")  # never started: nothing listens
    store = MongoStore(server.uri + FAST_FAIL, fresh_database_name())
    with pytest.raises(StoreUnavailable):
        await store.open()
    await store.close()
    gc.collect()


# --- revocations of one tenant committed in batches -----------------------------------------


async def test_a_batch_decides_its_plans_in_order(mongo: MongoStore, acme: MongoStore) -> None:
    """The first revocation runs alone; the three queued meanwhile share one transaction,
    in which the grant's revocation takes the next plan's token (not applied: no event)
    and a repeated deny entry is not applied either."""
    await mongo.register_credentials(
        TENANT, [credential(0, grant_id="g0"), credential(1), credential(2)]
    )
    deny = RevocationPlan(
        revoked_at=100,
        cause="token",
        primary_deny=DenyEntry("jti", 2_000),
        events=(EventDraft("revoked", "token", 100),),
    )
    outcomes = await asyncio.gather(
        mongo.apply_revocation(TENANT, revoke_one(0)),
        mongo.apply_revocation(TENANT, revoke(1)),
        mongo.apply_revocation(TENANT, revoke(2)),
        mongo.apply_revocation(TENANT, deny),
        mongo.apply_revocation(TENANT, deny),
    )

    assert [(o.applied, o.count, o.event_ids) for o in outcomes] == [
        (True, 1, (1,)),
        (True, 2, (2,)),
        (False, 0, ()),
        (True, 1, (3,)),
        (False, 0, ()),
    ]
    events = await mongo.list_events(TENANT, 0, 100)
    assert [(e.id, e.count) for e in events] == [(1, 1), (2, 2), (3, 1)]
    taken = await mongo.find_credential(TENANT, token(2))
    assert taken is not None and taken.revoked_at == 100


async def test_cancelling_the_request_that_runs_a_batch_leaves_the_batch_be(
    mongo: MongoStore,
    acme: MongoStore,
) -> None:
    await mongo.register_credentials(TENANT, [credential(n, grant_id=f"g{n}") for n in range(4)])
    first = asyncio.create_task(mongo.apply_revocation(TENANT, revoke_one(0)))
    await asyncio.sleep(0)  # it takes the lock and starts its batch
    queued = [asyncio.create_task(mongo.apply_revocation(TENANT, revoke_one(n))) for n in (1, 2, 3)]
    await asyncio.sleep(0)
    first.cancel()

    outcomes = await asyncio.gather(*queued)
    assert all(o.applied and o.count == 1 for o in outcomes)

    async def committed() -> bool:
        found = await mongo.find_credential(TENANT, token(0))
        return found is not None and found.revoked_at is not None

    await eventually(committed, "the cancelled request's batch commits all the same")
    assert [e.id for e in await mongo.list_events(TENANT, 0, 100)] == [1, 2, 3, 4]


async def test_more_revocations_than_one_batch_holds_all_apply_with_dense_ids(
    mongo: MongoStore,
    acme: MongoStore,
) -> None:
    n = 150  # more than two batches queue up behind the first
    await mongo.register_credentials(TENANT, [credential(i, grant_id=f"g{i}") for i in range(n)])
    plans = [revoke_one(i) for i in range(n)]

    outcomes = await asyncio.gather(*(mongo.apply_revocation(TENANT, p) for p in plans))

    assert all(o.applied and o.count == 1 for o in outcomes)
    assert sorted(i for o in outcomes for i in o.event_ids) == list(range(1, n + 1))
