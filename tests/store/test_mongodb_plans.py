"""Every query on the revocation and introspection paths walks an index.

Each command the MongoDB store sends is recorded (PyMongo command monitoring) and its
filter explained against the test server with ``executionStats``: an index scan that
examines only the documents it is about, however many other credentials the tenant has.
SecantusDB uses an index only for a filter of exactly an index's keys (or those keys and
one ``$in``/range on the last), so a query that passes here walks an index on MongoDB too.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from app.models import Credential, DenyEntry, EventDraft, MarkKind, RevocationPlan
from app.oauth import cascade
from app.store.mongodb.store import MongoStore
from app.types import TenantId
from tests.store.records import AT, DS, LATER, NOW, RT, add_tenant, credential, h
from tests.support.mongo import mongodb_store
from tests.support.secantus import shared_server

Document = dict[str, Any]
TENANT: TenantId = "acme"
OTHERS = 300
"""Credentials of other grants, subjects, clients and sessions in the same tenant."""
MOST_EXAMINED = 5
"""Documents a query may examine: the few of the scenario, never the other credentials."""
UNFILTERED = frozenset(
    {
        "insert",
        "getMore",
        "killCursors",
        "commitTransaction",
        "abortTransaction",
        "endSessions",
        "ping",
    }
)
"""Commands without a filter of their own (a getMore continues a query already seen; a
ping opens bulk work, such as the chunks of ``token_type_hint=all``'s sweep)."""


class Recorder(monitoring.CommandListener):
    """The commands sent to one database, while recording."""

    def __init__(self) -> None:
        self.database: str | None = None
        self.commands: list[Document] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.database is not None and event.database_name == self.database:
            self.commands.append(copy.deepcopy(dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    @contextmanager
    def recording(self, database: str) -> Iterator[list[Document]]:
        self.database, self.commands = database, []
        try:
            yield self.commands
        finally:
            self.database = None


RECORDER = Recorder()
monitoring.register(RECORDER)  # applies to clients created from now on; idle otherwise


def filters(command: Document) -> list[tuple[str, Document]]:
    """(collection, filter) of each statement of ``command``."""
    name = next(iter(command))
    collection = command[name]
    match name:
        case "find":
            return [(collection, command["filter"])]
        case "update":
            return [(collection, update["q"]) for update in command["updates"]]
        case "delete":
            return [(collection, delete["q"]) for delete in command["deletes"]]
        case "findAndModify":
            return [(collection, command["query"])]
        case "aggregate" if "$changeStream" in command["pipeline"][0]:
            return []  # the configuration watcher
        case "aggregate":
            return [(collection, command["pipeline"][0]["$match"])]
        case _ if name in UNFILTERED:
            return []
    raise AssertionError(f"no filter known for {name}: {command}")


def stages(plan: Document) -> Iterator[str]:
    yield plan["stage"]
    for key in ("inputStage", "inputStages"):
        children = plan.get(key, [])
        for child in children if isinstance(children, list) else [children]:
            yield from stages(child)


async def explain(db: Any, collection: str, query: Document) -> Document:
    explained: Document = await db.command(
        {"explain": {"find": collection, "filter": query}, "verbosity": "executionStats"}
    )
    return explained


async def assert_index_scans(
    store: MongoStore, raw: AsyncMongoClient[Document], call: Callable[[], Awaitable[object]]
) -> list[tuple[str, Document]]:
    database = store._database_name
    with RECORDER.recording(database) as commands:
        await call()
    queries = [query for command in commands for query in filters(command)]
    assert queries, "the call sent no query"
    for collection, query in queries:
        explained = await explain(raw[database], collection, query)
        plan = list(stages(explained["queryPlanner"]["winningPlan"]))
        examined = explained["executionStats"]["totalDocsExamined"]
        assert "IXSCAN" in plan and "COLLSCAN" not in plan, (collection, query, plan)
        assert examined <= MOST_EXAMINED, (collection, query, examined)
    return queries


@pytest.fixture
async def mongo(tmp_path: Path) -> AsyncIterator[MongoStore]:
    async with mongodb_store(tmp_path, refresh_interval_s=3600) as store:
        await add_tenant(store, TENANT)
        others = [
            credential(
                TENANT,
                f"other-{n}",
                RT,
                client_id=f"c{n % 7}",
                sub=f"s{n}",
                grant_id=f"g{n}",
                device_session_id=f"d{n}",
            )
            for n in range(OTHERS)
        ]
        await store.register_credentials(TENANT, [*others, *scenario()])
        yield store


@pytest.fixture
async def raw() -> AsyncIterator[AsyncMongoClient[Document]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(shared_server().uri, tz_aware=True)
    yield client
    await client.close()


def mine(token: str, type: Any = AT, **fields: Any) -> Credential:
    values = {"client_id": "app", "sub": "alice", "grant_id": "g", "device_session_id": "d"}
    values.update(fields)
    return credential(TENANT, token, type, **values)


def scenario() -> list[Credential]:
    return [mine("at"), mine("rt", RT), mine("ds", DS), mine("at-expired", exp=NOW - 1)]


def plan_of(c: Credential, policy: str) -> RevocationPlan:
    if policy == "all":
        return cascade.revoke_all_plan(c.client_id, NOW)
    if policy == "deny":
        event = EventDraft("revoked", "token", NOW)
        return RevocationPlan(NOW, "token", primary_deny=DenyEntry("jti-1", LATER), events=(event,))
    return cascade.plan_for(c, policy, NOW)


@pytest.mark.parametrize(
    ("token", "policy", "selector"),
    [
        ("at", "token", "ByHash"),
        ("rt", "grant", "ByGrant"),
        ("rt", "subject", "ByClientSubject"),
        ("at", "spid", "ByGrant of one type, an ended session"),
        ("ds", "token", "BySession"),
        ("at", "all", "ByClient"),
        ("at", "deny", "a JWT's deny entry"),
    ],
)
async def test_revocation_queries_are_index_scans(
    mongo: MongoStore,
    raw: AsyncMongoClient[Document],
    token: str,
    policy: str,
    selector: str,
) -> None:
    [presented] = [c for c in scenario() if c.token_hash == h(token)]
    plan = plan_of(presented, policy)

    async def revoke() -> None:
        outcome = await mongo.apply_revocation(TENANT, plan)
        assert outcome.applied, selector

    queries = await assert_index_scans(mongo, raw, revoke)
    assert any(collection == "counters" for collection, _ in queries)  # the event ids


async def test_lookups_are_index_scans(mongo: MongoStore, raw: AsyncMongoClient[Document]) -> None:
    revoked = plan_of(mine("rt", RT), "grant")
    await mongo.apply_revocation(TENANT, cascade.device_secret_plan(mine("ds", DS), NOW))
    await mongo.apply_revocation(TENANT, revoked)
    marks = [(MarkKind.GRANT, "g"), (MarkKind.CLIENT, "app"), (MarkKind.GRANT, "g0")]
    for call in (
        lambda: mongo.find_credential(TENANT, h("at")),
        lambda: mongo.not_before(TENANT, marks),
        lambda: mongo.is_denied(TENANT, "jti-1"),
        lambda: mongo.ended_session(TENANT, "d"),
        lambda: mongo.list_events(TENANT, 1, 10),
    ):
        await assert_index_scans(mongo, raw, call)


async def test_a_query_beside_the_index_keys_is_caught(
    mongo: MongoStore, raw: AsyncMongoClient[Document]
) -> None:
    """The check above can fail: the filter the store used to send is a full scan."""
    db = raw[mongo._database_name]
    live_of_grant = {"tenant_id": TENANT, "grant_id": "g", "revoked_at": None}
    explained = await explain(db, "credentials", live_of_grant)
    assert "COLLSCAN" in stages(explained["queryPlanner"]["winningPlan"])
    assert explained["executionStats"]["totalDocsExamined"] > OTHERS
