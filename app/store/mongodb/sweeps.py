"""Sweeps on MongoDB (``app.store.sweeps``): starting one in a revocation's transaction,
and writing it to each credential afterwards, a chunk per transaction.

A sweep is a document of ``SWEEPS`` (its time, cause, scopes and event drafts), which
every instance keeps in memory (``pending_sweeps``), and a progress document among the
tenant's counters (how many it took down so far, when it last moved), which no instance
follows: chunks write it, not the sweep.

The credentials of a scope are found by one query on the keys of the index that serves
the scope, read as a stream outside any transaction: a transaction reads a snapshot,
and a million documents in one would outlive MongoDB's transaction time limit. Every
credential the sweep covers was committed before it (``write_shards``), so the stream
sees them all. Each chunk's transaction then revokes those that are still live, by
exact token hash and on a condition the update itself tests (a credential revoked in
between by another revocation keeps its time and cause, and is not counted twice).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from typing import Any, Protocol, TypeVar

import pymongo
from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from app.models import RevocationOutcome, RevocationPlan, SweepScope
from app.store.mongodb import deadlines, schema, write_shards
from app.store.mongodb.documents import event_doc
from app.store.mongodb.registration import STAMP
from app.store.mongodb.revocation import apply_plans, is_live, reserve_event_ids
from app.store.sweeps import PendingSweep, dump_events, load_events
from app.types import TenantId, TokenHash

Document = dict[str, Any]
T = TypeVar("T")

SWEEP_COUNTER = "sweeps"
"""The counter of the tenant's sweep ids."""

FINISHED_ELSEWHERE = RevocationOutcome(applied=True, count=0)
"""A sweep another process finished (housekeeping, after this one stalled): its events,
with its count, are that process's to append."""

UPDATES_PER_COMMAND = 100
"""Updates per command of a chunk's transaction."""
SCAN_BATCH = 500
"""Credentials per batch (``getMore``) of a scope's stream."""

SCANNED: Document = {"token_hash": True, "revoked_at": True, "exp": True, STAMP: True, "_id": False}


class Transact(Protocol):
    """Runs a callback in a transaction, retried on transient errors, and commits it."""

    async def __call__(self, callback: Callable[[AsyncClientSession], Awaitable[T]]) -> T: ...


def progress_name(sweep_id: int) -> str:
    return f"sweep:{sweep_id}"


def pending_of(doc: Document) -> PendingSweep:
    scopes = tuple(SweepScope(s["client_id"], s.get("sub")) for s in doc["scopes"])
    return PendingSweep(int(doc["id"]), int(doc["at"]), doc["cause"], scopes)


def scope_query(tenant_id: TenantId, scope: Document) -> Document:
    """The scope's credentials, by the keys of ``tenant_client`` or ``tenant_sub_client``."""
    if scope.get("sub") is None:
        return {"tenant_id": tenant_id, "client_id": scope["client_id"]}
    return {"tenant_id": tenant_id, "sub": scope["sub"], "client_id": scope["client_id"]}


async def start(
    db: AsyncDatabase[Document],
    session: AsyncClientSession,
    tenant_id: TenantId,
    plan: RevocationPlan,
    pending: Sequence[PendingSweep],
    retention_s: int,
    now: int,
) -> int | None:
    """In ``session``'s transaction: apply ``plan`` less its sweeping selectors, and
    commit a sweep of those. Its id; None when the plan does not apply (its tenant is
    gone, its primary is not live)."""
    rest = (
        await apply_plans(db, session, tenant_id, [plan.without_sweeps()], retention_s, pending)
    )[0]
    if not rest.applied:
        return None
    sweep_id = await _next_id(db, session, tenant_id)
    scopes = [{"client_id": scope.client_id, "sub": scope.sub} for scope in plan.sweeps]
    await db[schema.SWEEPS].insert_one(
        {
            "tenant_id": tenant_id,
            "id": sweep_id,
            "at": plan.revoked_at,
            "cause": plan.cause,
            "scopes": scopes,
            "events": dump_events(plan.events),
        },
        session=session,
    )
    await db[schema.COUNTERS].insert_one(
        {
            "tenant_id": tenant_id,
            "name": progress_name(sweep_id),
            "count": rest.count,
            "touched_at": now,
        },
        session=session,
    )
    # Registrations in flight conflict with this, and see the sweep when retried.
    await write_shards.write_all(db, session, tenant_id, {"$max": {write_shards.SWEEP: sweep_id}})
    return sweep_id


async def run(
    db: AsyncDatabase[Document],
    transact: Transact,
    tenant_id: TenantId,
    sweep_id: int,
    *,
    chunk: int,
    clock: Callable[[], int],
) -> RevocationOutcome:
    """Write the sweep to every credential it covers, ``chunk`` a transaction; then
    append its events and remove it. Its outcome."""
    sweep = await db[schema.SWEEPS].find_one({"tenant_id": tenant_id, "id": sweep_id})
    if sweep is None:
        return FINISHED_ELSEWHERE
    at, cause = int(sweep["at"]), sweep["cause"]
    hashes: list[TokenHash] = []
    for scope in sweep["scopes"]:
        async for batch in _scan(db, scope_query(tenant_id, scope)):
            for doc in batch:
                if is_live(doc, at) and (doc.get(STAMP) or 0) < sweep_id:
                    hashes.append(doc["token_hash"])
                if len(hashes) >= chunk:
                    revoke = partial(_chunk, db, tenant_id, sweep_id, at, cause, hashes, clock())
                    if not await transact(revoke):
                        return FINISHED_ELSEWHERE
                    hashes = []
    if hashes and not await transact(
        partial(_chunk, db, tenant_id, sweep_id, at, cause, hashes, clock())
    ):
        return FINISHED_ELSEWHERE
    return await transact(partial(_finish, db, tenant_id, sweep_id))


async def _scan(db: AsyncDatabase[Document], query: Document) -> AsyncIterator[list[Document]]:
    """The scope's credentials, ``SCAN_BATCH`` at a time. Each batch is one operation of
    bulk work (``deadlines``): a server may take a while to start a large answer."""
    cursor = db[schema.CREDENTIALS].find(query, SCANNED).batch_size(SCAN_BATCH)
    try:
        while True:
            with pymongo.timeout(deadlines.BULK_TIMEOUT_S):
                batch = await cursor.to_list(SCAN_BATCH)
            if not batch:
                return
            yield batch
    finally:
        await cursor.close()


async def _chunk(
    db: AsyncDatabase[Document],
    tenant_id: TenantId,
    sweep_id: int,
    at: int,
    cause: str,
    hashes: Sequence[TokenHash],
    now: int,
    session: AsyncClientSession,
) -> bool:
    """Revoke ``hashes`` where still live; False when the sweep is gone (finished)."""
    progress = {"tenant_id": tenant_id, "name": progress_name(sweep_id)}
    # Written first: a concurrent finish (which deletes it) is then a write conflict.
    if (
        await db[schema.COUNTERS].find_one_and_update(
            progress, {"$set": {"touched_at": now}}, session=session
        )
        is None
    ):
        return False
    taken = await _revoke(db, session, tenant_id, at, cause, hashes)
    if taken:
        await db[schema.COUNTERS].update_one(progress, {"$inc": {"count": taken}}, session=session)
    return True


async def _finish(
    db: AsyncDatabase[Document], tenant_id: TenantId, sweep_id: int, session: AsyncClientSession
) -> RevocationOutcome:
    """Append the sweep's events, with its count, and remove it: a short transaction, as
    it writes the tenant's event counter, which every revocation of the tenant writes."""
    sweep = await db[schema.SWEEPS].find_one(
        {"tenant_id": tenant_id, "id": sweep_id}, session=session
    )
    if sweep is None:
        return FINISHED_ELSEWHERE
    drafts = load_events(sweep["events"])
    # The counter first, as ``apply_plans`` does: a concurrent revocation meets this
    # transaction at its first write, not after the rest of its work.
    first = await reserve_event_ids(db, session, tenant_id, len(drafts)) if drafts else 0
    await db[schema.SWEEPS].delete_one({"tenant_id": tenant_id, "id": sweep_id}, session=session)
    progress = await db[schema.COUNTERS].find_one_and_delete(
        {"tenant_id": tenant_id, "name": progress_name(sweep_id)}, session=session
    )
    count = 0 if progress is None else int(progress["count"])
    event_ids = tuple(range(first, first + len(drafts)))
    if drafts:
        await db[schema.EVENTS].insert_many(
            [
                event_doc(tenant_id, event_id, draft, count)
                for event_id, draft in zip(event_ids, drafts, strict=True)
            ],
            session=session,
        )
    return RevocationOutcome(applied=True, count=count, event_ids=event_ids)


def _revocation(at: int, cause: str) -> list[Document]:
    """An update that revokes a live credential and leaves a revoked one as it is (a
    condition on ``revoked_at`` in the filter would make SecantusDB scan)."""
    live = {"$lte": ["$revoked_at", None]}  # null or missing
    return [
        {
            "$set": {
                "revoked_at": {"$cond": [live, at, "$revoked_at"]},
                "revoked_cause": {"$cond": [live, cause, "$revoked_cause"]},
            }
        }
    ]


async def _revoke(
    db: AsyncDatabase[Document],
    session: AsyncClientSession,
    tenant_id: TenantId,
    at: int,
    cause: str,
    hashes: Sequence[TokenHash],
) -> int:
    """Revoke those of ``hashes`` still live: how many (an unchanged one is not counted).
    A few commands of ``UPDATES_PER_COMMAND``, so that other requests' operations go in
    between (a server may run one command at a time, as SecantusDB does)."""
    update = _revocation(at, cause)
    taken = 0
    for start in range(0, len(hashes), UPDATES_PER_COMMAND):
        result = await db[schema.CREDENTIALS].bulk_write(
            [
                UpdateOne({"tenant_id": tenant_id, "token_hash": token_hash}, update)
                for token_hash in hashes[start : start + UPDATES_PER_COMMAND]
            ],
            ordered=False,
            session=session,
        )
        taken += result.modified_count
    return taken


async def _next_id(
    db: AsyncDatabase[Document], session: AsyncClientSession, tenant_id: TenantId
) -> int:
    counter = await db[schema.COUNTERS].find_one_and_update(
        {"tenant_id": tenant_id, "name": SWEEP_COUNTER},
        {"$inc": {"value": 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    assert counter is not None  # an upsert returning the document after
    return int(counter["value"])


async def idle(db: AsyncDatabase[Document], touched_before: int) -> list[tuple[TenantId, int]]:
    """Sweeps that no process has advanced since ``touched_before``, oldest first."""
    found: list[tuple[TenantId, int]] = []
    async for sweep in db[schema.SWEEPS].find({}, {"tenant_id": True, "id": True, "_id": False}):
        tenant_id, sweep_id = sweep["tenant_id"], int(sweep["id"])
        progress = await db[schema.COUNTERS].find_one(
            {"tenant_id": tenant_id, "name": progress_name(sweep_id)}, {"touched_at": True}
        )
        if progress is None or int(progress["touched_at"]) <= touched_before:
            found.append((tenant_id, sweep_id))
    return sorted(found, key=lambda pair: pair[1])
