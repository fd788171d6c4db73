"""What only the embedded store promises: its file, its writer thread, its failures."""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from app.errors import StoreUnavailable
from app.models import ByGrant, ByHash, Grant, MarkKind, NotBeforeMark, RevocationPlan
from app.store.sqlite import config_stamp, connection, revocation, schema, writer, writes
from app.store.sqlite import store as store_module
from app.store.sqlite.store import SqliteStore
from tests.store.records import (
    NOW,
    Populated,
    add_tenant,
    assert_populated,
    client,
    credential,
    h,
    is_revoked,
    populate,
    revoke_token,
    revoked,
)
from tests.store.sqlite_worker import revoke_many


@asynccontextmanager
async def opened(path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(path)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with opened(tmp_path / "store.sqlite3") as store:
        await add_tenant(store, "acme")
        yield store


def writer_threads(path: Path) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"sqlite-writer:{path.name}"]


def hold_writer(store: SqliteStore) -> tuple[threading.Event, asyncio.Future[bool]]:
    """Keep the writer busy (a heavy job, on its thread) until the event is set; light
    jobs queued meanwhile go into one batch."""
    gate = threading.Event()
    held = store.writer.submit(lambda conn: gate.wait(timeout=30), heavy=True)
    return gate, held


# --- one transaction per batch, one savepoint per job -----------------------------------


async def test_a_failing_plan_rolls_back_alone(
    sqlite: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = ("first", "boom", "last")
    await sqlite.register_credentials(
        "acme", [credential("acme", t, grant_id=f"g-{t}") for t in tokens]
    )
    await sqlite.put_grant(Grant("acme", "g-boom", "app", "alice"))
    append_events = revocation.append_events

    def fail_on_boom(
        conn: sqlite3.Connection, tenant_id: str, plan: RevocationPlan, count: int
    ) -> tuple[int, ...]:
        if plan.cause == "boom":
            raise RuntimeError("boom")
        return append_events(conn, tenant_id, plan, count)

    monkeypatch.setattr(revocation, "append_events", fail_on_boom)
    boom = RevocationPlan(
        NOW,
        "boom",
        primary=h("boom"),
        selectors=(ByHash(h("boom")), ByGrant("g-boom")),
        delete_grant_ids=("g-boom",),
        end_sessions=("s-boom",),
        marks=(NotBeforeMark(MarkKind.GRANT, "g-boom", NOW),),
        events=(revoked("boom"),),
    )
    commits = sqlite.writer.commits
    gate, held = hold_writer(sqlite)
    jobs = [
        asyncio.ensure_future(sqlite.apply_revocation("acme", plan))
        for plan in (revoke_token("first"), boom, revoke_token("last"))
    ]
    asyncio.get_running_loop().call_soon(gate.set)  # after the jobs are queued

    results = await asyncio.gather(held, *jobs, return_exceptions=True)

    assert sqlite.writer.commits - commits <= 2  # the three jobs shared one transaction
    assert isinstance(results[2], RuntimeError)
    assert not await is_revoked(sqlite, "acme", "boom")
    assert await sqlite.get_grant("acme", "g-boom") is not None
    assert await sqlite.ended_session("acme", "s-boom") is None
    assert await sqlite.not_before("acme", [(MarkKind.GRANT, "g-boom")]) is None
    assert await is_revoked(sqlite, "acme", "first")
    assert await is_revoked(sqlite, "acme", "last")
    events = await sqlite.list_events("acme", 0, 10)
    assert [e.id for e in events] == [1, 2]  # the failed job's id was rolled back too

    monkeypatch.undo()
    assert (await sqlite.apply_revocation("acme", boom)).count == 1


async def test_a_heavy_job_leaves_the_event_loop_free(sqlite: SqliteStore) -> None:
    started, release = threading.Event(), threading.Event()

    def heavy(conn: sqlite3.Connection) -> bool:
        started.set()
        return release.wait(timeout=30)

    held = sqlite.writer.submit(heavy, heavy=True)
    assert await asyncio.to_thread(started.wait, 30)
    assert await sqlite.get_tenant("acme") is not None  # the loop serves meanwhile
    release.set()
    assert await held is True


async def test_concurrent_writes_share_commits(sqlite: SqliteStore) -> None:
    tokens = [f"t{i}" for i in range(50)]
    await sqlite.register_credentials("acme", [credential("acme", t) for t in tokens])
    commits = sqlite.writer.commits
    gate, held = hold_writer(sqlite)
    jobs = [asyncio.ensure_future(sqlite.apply_revocation("acme", revoke_token(t))) for t in tokens]
    asyncio.get_running_loop().call_soon(gate.set)

    await held
    outcomes = await asyncio.gather(*jobs)

    assert sqlite.writer.commits - commits <= 2
    assert all(o.applied and o.count == 1 for o in outcomes)


async def test_what_follows_a_commit_runs_for_committed_jobs_only(sqlite: SqliteStore) -> None:
    followed: list[object] = []

    def boom(conn: sqlite3.Connection) -> int:
        raise RuntimeError("boom")

    def broken(result: object) -> None:
        raise RuntimeError("a bug after the commit")

    gate, held = hold_writer(sqlite)
    first = sqlite.writer.submit(lambda conn: 1, committed=followed.append)
    failing = sqlite.writer.submit(boom, committed=followed.append)
    after_bug = sqlite.writer.submit(lambda conn: 2, committed=broken)
    last = sqlite.writer.submit(lambda conn: 3, committed=followed.append)
    gate.set()
    await held

    assert await first == 1
    with pytest.raises(RuntimeError, match="boom"):
        await failing
    assert await after_bug == 2  # the commit stands, and the writer goes on
    assert await last == 3
    assert followed == [1, 3]


async def test_events_of_a_revocation_whose_caller_left_are_announced(
    sqlite: SqliteStore,
) -> None:
    """The feed's waiters learn of events committed for a caller cancelled meanwhile."""
    await sqlite.register_credentials("acme", [credential("acme", "t")])
    before = sqlite.events_stamp("acme")
    assert before is not None
    gate, held = hold_writer(sqlite)
    leaving = asyncio.ensure_future(sqlite.apply_revocation("acme", revoke_token("t")))
    await asyncio.sleep(0)  # the revocation is queued behind the held job
    leaving.cancel()
    gate.set()
    await held
    await sqlite.writer.submit(lambda conn: None)  # queued after the revocation

    assert leaving.cancelled()
    assert await is_revoked(sqlite, "acme", "t")
    assert sqlite.events_stamp("acme") != before


async def test_disk_full_fails_the_write_and_keeps_nothing(sqlite: SqliteStore) -> None:
    def cap(conn: sqlite3.Connection) -> None:
        pages = conn.execute("PRAGMA page_count").fetchall()[0][0]
        conn.execute(f"PRAGMA max_page_count = {pages}")

    await sqlite.writer.submit(cap)
    items = [credential("acme", f"t{i}") for i in range(2_000)]

    with pytest.raises(StoreUnavailable) as raised:
        await sqlite.register_credentials("acme", items)

    assert raised.value.body() == {"error": "temporarily_unavailable"}
    assert await sqlite.find_credential("acme", h("t0")) is None
    await sqlite.writer.submit(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823"))
    assert (await sqlite.register_credentials("acme", items)).registered == 2_000


async def test_a_read_only_database_is_unavailable(sqlite: SqliteStore) -> None:
    await sqlite.register_credentials("acme", [credential("acme", "t1")])
    await sqlite.writer.submit(lambda conn: conn.execute("PRAGMA query_only = ON"))
    with pytest.raises(StoreUnavailable):
        await sqlite.apply_revocation("acme", revoke_token("t1"))
    assert not await is_revoked(sqlite, "acme", "t1")


async def test_a_lock_held_past_the_busy_timeout_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "WRITER_BUSY_TIMEOUT_S", 0.05)
    path = tmp_path / "store.sqlite3"
    async with opened(path) as store:
        await add_tenant(store, "acme")
        await store.register_credentials("acme", [credential("acme", "t1")])
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        try:
            with pytest.raises(StoreUnavailable):
                await store.apply_revocation("acme", revoke_token("t1"))
            assert not await is_revoked(store, "acme", "t1")  # reads never wait
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert (await store.apply_revocation("acme", revoke_token("t1"))).applied


async def test_the_writer_waits_for_a_lock_held_by_another_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.sqlite3"
    async with opened(path) as store:
        await add_tenant(store, "acme")
        await store.register_credentials("acme", [credential("acme", "t1")])
        waited = threading.Event()

        def wait() -> None:
            waited.set()
            time.sleep(writer.LOCK_POLL_S)

        monkeypatch.setattr(writer, "wait_for_lock", wait)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            revoking = asyncio.ensure_future(store.apply_revocation("acme", revoke_token("t1")))
            assert await asyncio.to_thread(waited.wait, 30)
            assert not revoking.done()
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert (await revoking).applied
        assert await is_revoked(store, "acme", "t1")


# --- the file ------------------------------------------------------------------------------


async def test_durable_settings(sqlite: SqliteStore) -> None:
    def pragmas(conn: sqlite3.Connection) -> list[object]:
        names = ("journal_mode", "synchronous", "foreign_keys")
        return [conn.execute(f"PRAGMA {name}").fetchall()[0][0] for name in names]

    assert await sqlite.writer.submit(pragmas) == ["wal", 2, 1]  # 2: FULL


async def test_reopening_keeps_data_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    async with opened(path) as store:
        data: Populated = await populate(store, "acme")
    async with opened(path) as store:
        await assert_populated(store, data)
    with sqlite3.connect(path) as conn:
        assert schema.schema_version(conn) == len(schema.MIGRATIONS)
    conn.close()


async def test_a_new_migration_is_applied_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.sqlite3"
    async with opened(path) as store:
        await add_tenant(store, "acme")
    extra = ("CREATE TABLE extra (x INTEGER)", "INSERT INTO extra VALUES (1)")
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, extra))
    for _ in range(2):
        async with opened(path) as store:
            assert await store.get_tenant("acme") is not None
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM extra").fetchall() == [(1,)]
    assert schema.schema_version(conn) == len(schema.MIGRATIONS)
    conn.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(StoreUnavailable):
        await SqliteStore(path).open()
    assert writer_threads(path) == []


@pytest.mark.parametrize("kind", ["directory", "missing directory", "corrupt file"])
async def test_a_file_that_cannot_be_opened_is_unavailable(tmp_path: Path, kind: str) -> None:
    path = {
        "directory": tmp_path,
        "missing directory": tmp_path / "missing" / "store.sqlite3",
        "corrupt file": tmp_path / "corrupt.sqlite3",
    }[kind]
    if kind == "corrupt file":
        path.write_bytes(b"this is not a database " * 1_000)
    store = SqliteStore(path)
    with pytest.raises(StoreUnavailable) as raised:
        await store.open()
    assert raised.value.body() == {"error": "temporarily_unavailable"}
    assert writer_threads(path) == []
    with pytest.raises(StoreUnavailable):
        await store.ping()


async def test_every_tenant_table_is_emptied_by_delete_tenant(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    async with opened(path) as store:
        await populate(store, "acme")
        await populate(store, "globex")
        await store.delete_tenant("acme")
    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    with_tenant = {
        table
        for table in tables
        if any(c[1] == "tenant_id" for c in conn.execute(f"PRAGMA table_info({table})"))
    }
    # deleted_tenants holds a tenant only while its deletion is under way, the sweep
    # tables only while a sweep is (tests/store/test_mass_revocation.py deletes those).
    # config_changes names the tenant (the deletion too, so that other processes drop
    # it) until the log is pruned: no data of the tenant's.
    assert with_tenant == {*schema.TENANT_TABLES, "deleted_tenants", "config_changes"}
    with_tenant.discard("config_changes")
    for table in with_tenant:
        count = f"SELECT count(*) FROM {table} WHERE tenant_id = ?"  # noqa: S608
        assert conn.execute(count, ("acme",)).fetchall() == [(0,)], table
        if table not in {"deleted_tenants", "sweeps", "sweep_scopes"}:
            assert conn.execute(count, ("globex",)).fetchall() != [(0,)], table
    conn.close()


def test_queries_use_indexes(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    conn = sqlite3.connect(path)
    for migration in schema.MIGRATIONS:
        for statement in migration:
            conn.execute(statement)
    queries = [
        revocation.REVOKE_BY_HASH,
        revocation.REVOKE_BY_GRANT,
        revocation.REVOKE_BY_CLIENT_SUBJECT,
        revocation.REVOKE_BY_CLIENT,
        revocation.REVOKE_BY_SESSION,
        writes.FIND_CREDENTIAL,
        store_module.SUBJECT_CLIENTS,
        store_module.LIST_EVENTS,
    ]
    for query in queries:
        names = re.findall(r":(\w+)", query)
        params = dict.fromkeys(names) if names else [None] * query.count("?")
        plan = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + query, params)]
        assert not [step for step in plan if re.match(r"SCAN \w+$", step)], (query, plan)
    conn.close()


def test_not_before_marks_are_looked_up_by_their_whole_key(tmp_path: Path) -> None:
    """Three marks cover a JWT (client, client and subject, grant): each is one lookup on
    the primary key, never a walk through every mark of the tenant."""
    conn = sqlite3.connect(tmp_path / "store.sqlite3")
    for migration in schema.MIGRATIONS:
        for statement in migration:
            conn.execute(statement)
    conn.executemany(
        "INSERT INTO not_before (tenant_id, kind, key, at) VALUES ('acme', 'grant', ?, 1)",
        [(f"g{i}",) for i in range(2_000)],
    )
    # No ANALYZE: the service never runs it, and with statistics SQLite plans well either way.
    query = store_module.not_before_query(3)
    params = ["acme", "client", "c", "acme", "client_subject", "c\x00s", "acme", "grant", "g1"]
    plan = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + query, params)]
    searches = [step for step in plan if step.startswith(("SEARCH not_before", "SCAN not_before"))]
    assert (
        searches == ["SEARCH not_before USING PRIMARY KEY (tenant_id=? AND kind=? AND key=?)"] * 3
    ), plan
    assert conn.execute(query, params).fetchall() == [(1,)]
    conn.close()


# --- life cycle --------------------------------------------------------------------------


async def test_close_finishes_queued_writes_and_stops_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "closing.sqlite3"
    store = SqliteStore(path)
    await store.open()
    tokens = [f"t{i}" for i in range(20)]
    await add_tenant(store, "acme")
    await store.register_credentials("acme", [credential("acme", t) for t in tokens])
    assert len(writer_threads(path)) == 1

    # gather starts the revocations (each queues its job) before close() runs
    results = await asyncio.gather(
        *(store.apply_revocation("acme", revoke_token(t)) for t in tokens), store.close()
    )

    outcomes = [r for r in results if r is not None]
    assert len(outcomes) == len(tokens)
    assert all(o.applied for o in outcomes)
    assert writer_threads(path) == []
    with pytest.raises(StoreUnavailable):
        await store.ping()
    with pytest.raises(StoreUnavailable):
        await store.find_credential("acme", h("t1"))
    with pytest.raises(StoreUnavailable):
        await store.apply_revocation("acme", revoke_token("t1"))
    await store.close()  # twice is fine

    async with opened(path) as again:
        assert all([await is_revoked(again, "acme", t) for t in tokens])


async def test_two_stores_on_one_file_see_each_other(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    async with opened(path) as one, opened(path) as two:
        await add_tenant(one, "acme")
        assert await two.get_tenant("acme") is not None
        assert await two.config_version() == await one.config_version()
        await one.register_credentials("acme", [credential("acme", "t1")])
        assert (await two.apply_revocation("acme", revoke_token("t1"))).applied
        assert not (await one.apply_revocation("acme", revoke_token("t1"))).applied
        assert await is_revoked(one, "acme", "t1")


async def test_a_configuration_change_is_seen_at_once_by_another_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No periodic re-read during the test: only the stamp can announce the change.
    monkeypatch.setattr(config_stamp, "RECHECK_S", 3600.0)
    path = tmp_path / "store.sqlite3"
    async with opened(path) as one, opened(path) as two:
        await add_tenant(one, "acme")
        before = await two.config_version()
        assert await two.config_version() == before  # cached
        await one.put_client(client("acme", "app"))
        assert await two.config_version() != before
        assert await one.config_version() == await two.config_version()
        assert await two.get_client("acme", "app") is not None


def test_two_processes_write_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    n = 60
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(2)
    workers = [
        spawn.Process(target=revoke_many, args=(str(path), prefix, n, start))
        for prefix in ("p", "q")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]

    async def check() -> None:
        async with opened(path) as store:
            for prefix in ("p", "q"):
                for i in range(n):
                    assert await is_revoked(store, "acme", f"{prefix}{i}")
            events = await store.list_events("acme", 0, 10 * n)
            assert [e.id for e in events] == list(range(1, 2 * n + 1))

    asyncio.run(check())
