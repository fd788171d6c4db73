"""Retention purges: one tenant's oldest events, not-before marks and ended sessions,
at most ``limit`` documents a call (``Store.purge_events`` and the like).

Each call reads the times of the oldest ``limit`` documents through the tenant's time
index (``schema``), then deletes by a range of that index below the last of them, so
that the delete is an index range on every server (SecantusDB, the test server, answers
a long ``$in`` beside another predicate by scanning the collection once per key). The
filter repeats the cut-off, which keeps what changed meanwhile: a mark that a
revocation set again (``$max`` of its ``at``) is past it. No transaction is needed: each
document goes or stays on its own merits. Before it deletes marks or ended sessions, a
call advances the tenant's retention horizon to its cut-off (``advance``, a transaction
of ``horizon``'s): a registration that no longer sees them sees that.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from app.store.mongodb import schema
from app.types import TenantId

Document = dict[str, Any]

Advance = Callable[[], Awaitable[None]]
"""Advances the tenant's retention horizon to the call's cut-off."""

IN_BATCH = 100
"""Keys per ``$in`` of the ended-sessions purge, each query naming only the tenant and
the keys, so that it stays on the session index."""


async def _purge_oldest(
    db: AsyncDatabase[Document],
    name: str,
    tenant_id: TenantId,
    field: str,
    before: int,
    limit: int,
    advance: Advance | None = None,
) -> int:
    """Delete up to ``limit`` of the tenant's documents of ``name`` whose ``field`` is
    before ``before``, oldest first; at least one when any is. ``advance`` is awaited
    before the delete."""
    collection = db[name]
    due: Document = {"tenant_id": tenant_id, field: {"$lt": before}}
    # One more than ``limit``: whether the last one's time goes on past the chunk.
    oldest = collection.find(due, {field: True}).sort(field, 1).limit(limit + 1)
    found = [(int(doc[field]), doc["_id"]) async for doc in oldest]
    if not found:
        return 0
    if len(found) > limit:
        first, last, after = found[0][0], found[limit - 1][0], found[limit][0]
        if last < after:
            due = {"tenant_id": tenant_id, field: {"$lte": last}}
        elif first < last:
            # More share the last one's time: they go in a later call.
            due = {"tenant_id": tenant_id, field: {"$lt": last}}
        else:
            # More than ``limit`` share one time: ``limit`` of them, by id.
            due = {"_id": {"$in": [doc_id for _, doc_id in found[:limit]]}, **due}
    if advance is not None:
        await advance()
    result = await collection.delete_many(due)
    return result.deleted_count


async def purge_events(
    db: AsyncDatabase[Document], tenant_id: TenantId, before: int, limit: int
) -> int:
    return await _purge_oldest(db, schema.EVENTS, tenant_id, "time", before, limit)


async def purge_marks(
    db: AsyncDatabase[Document], tenant_id: TenantId, before: int, limit: int, advance: Advance
) -> int:
    return await _purge_oldest(db, schema.MARKS, tenant_id, "at", before, limit, advance)


async def purge_ended_sessions(
    db: AsyncDatabase[Document],
    tenant_id: TenantId,
    before: int,
    now: int,
    limit: int,
    advance: Advance,
) -> int:
    """Sessions ended before ``before``, oldest first, ``IN_BATCH`` at a time; of each
    batch those with a live stored credential are kept and skipped, so the call goes on
    until it dropped ``limit`` or ran out of candidates. ``advance`` is awaited once,
    before the first batch is checked."""
    candidates = (
        db[schema.SESSIONS]
        .find(
            {"tenant_id": tenant_id, "ended_at": {"$lt": before}},
            {"device_session_id": True, "_id": False},
        )
        .sort("ended_at", 1)
        .batch_size(IN_BATCH)
    )
    once = _once(advance)
    dropped = 0
    batch: list[str] = []
    try:
        async for doc in candidates:
            batch.append(doc["device_session_id"])
            if len(batch) == min(IN_BATCH, limit - dropped):
                dropped += await _drop_unused(db, tenant_id, batch, now, once)
                batch = []
                if dropped >= limit:
                    return dropped
        if batch:
            dropped += await _drop_unused(db, tenant_id, batch, now, once)
    finally:
        await candidates.close()
    return dropped


def _once(advance: Advance) -> Advance:
    done = False

    async def first_time() -> None:
        nonlocal done
        if not done:
            await advance()
            done = True

    return first_time


async def _drop_unused(
    db: AsyncDatabase[Document],
    tenant_id: TenantId,
    sessions: list[str],
    now: int,
    advance: Advance,
) -> int:
    """Drop those of ``sessions`` that no live stored credential belongs to. (A
    session's ``ended_at`` never changes once set, so it need not be checked again.)

    The horizon is advanced before the check: a credential of a session registered
    between the check and the delete is either seen live by the check, which keeps the
    session, or registered after the horizon, which takes it when it was issued before.
    """
    await advance()
    found = db[schema.CREDENTIALS].find(
        {"tenant_id": tenant_id, "device_session_id": {"$in": sessions}},
        {"device_session_id": True, "revoked_at": True, "exp": True, "_id": False},
    )
    kept = {
        doc["device_session_id"]
        async for doc in found
        if doc.get("revoked_at") is None and doc["exp"] > now
    }
    unused = [session for session in sessions if session not in kept]
    if not unused:
        return 0
    result = await db[schema.SESSIONS].delete_many(
        {"tenant_id": tenant_id, "device_session_id": {"$in": unused}}
    )
    return result.deleted_count
