"""A ``RevocationPlan`` applied inside one MongoDB transaction.

The primary credential's update is the transaction's first write, conditioned on
``revoked_at: null``: of concurrent revocations of one token, the first to write it wins
and the others meet a write conflict, are retried, then find the token revoked and change
nothing. Event ids come from a per-tenant counter document updated in the same
transaction, so they grow in commit order; that document is also where concurrent
revocations of one tenant queue up.
"""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from app.models import (
    ALL_TOKEN_TYPES,
    ByClient,
    ByClientSubject,
    ByGrant,
    ByHash,
    BySession,
    RevocationOutcome,
    RevocationPlan,
    Selector,
    TokenType,
)
from app.store.mongodb import schema
from app.store.mongodb.documents import event_doc, expire_at
from app.types import TenantId

Document = dict[str, Any]

EVENT_COUNTER = "events"


class NotApplied(Exception):
    """The plan's primary is missing or already revoked, or its deny entry exists.

    Raised inside the transaction so that it is aborted with nothing written.
    """


def _types(types: frozenset[TokenType]) -> Document:
    if types >= ALL_TOKEN_TYPES:
        return {}
    return {"type": {"$in": sorted(t.value for t in types)}}


def selector_filter(selector: Selector) -> Document:
    """The credentials one selector names, within a tenant."""
    match selector:
        case ByHash(token_hash):
            return {"token_hash": token_hash}
        case ByGrant(grant_id, types):
            return {"grant_id": grant_id, **_types(types)}
        case ByClientSubject(client_id, sub, types):
            return {"sub": sub, "client_id": client_id, **_types(types)}
        case ByClient(client_id):
            return {"client_id": client_id}
        case BySession(device_session_id, types):
            return {"device_session_id": device_session_id, **_types(types)}


def live_selected(tenant_id: TenantId, plan: RevocationPlan) -> Document:
    """Live credentials (at ``plan.revoked_at``) matched by any of the plan's selectors."""
    return {
        "tenant_id": tenant_id,
        "$or": [selector_filter(s) for s in plan.selectors],
        "revoked_at": None,
        "exp": {"$gt": plan.revoked_at},
    }


async def apply_plan(
    db: AsyncDatabase[Document],
    session: AsyncClientSession,
    tenant_id: TenantId,
    plan: RevocationPlan,
    retention_s: int,
) -> RevocationOutcome:
    """Apply ``plan`` in ``session``'s transaction; raise ``NotApplied`` to abort it."""
    credentials = db[schema.CREDENTIALS]
    revoke = {"$set": {"revoked_at": plan.revoked_at, "revoked_cause": plan.cause}}
    count = 0

    if plan.primary is not None:
        primary = {"tenant_id": tenant_id, "token_hash": plan.primary}
        if plan.selectors:
            result = await credentials.update_one(
                {**live_selected(tenant_id, plan), **primary}, revoke, session=session
            )
            count += result.modified_count
        if count == 0:
            # Not revoked by this plan: find out whether it is missing or already revoked.
            found = await credentials.find_one(
                primary, {"revoked_at": True, "_id": False}, session=session
            )
            if found is None or found.get("revoked_at") is not None:
                raise NotApplied

    if plan.primary_deny is not None:
        deny = plan.primary_deny
        result = await db[schema.DENY_LIST].update_one(
            {"tenant_id": tenant_id, "key": deny.key},
            {"$setOnInsert": {"exp": deny.exp, schema.EXPIRE_AT: expire_at(deny.exp, retention_s)}},
            upsert=True,
            session=session,
        )
        if result.upserted_id is None:
            raise NotApplied

    # Taken now, not last: concurrent revocations in a tenant meet here, and the losers
    # are retried before doing the rest of the work rather than after.
    event_ids = await _reserve_event_ids(db, session, tenant_id, len(plan.events))

    if plan.selectors:
        result = await credentials.update_many(
            live_selected(tenant_id, plan), revoke, session=session
        )
        count += result.modified_count

    await _delete_grants(db, session, tenant_id, plan)
    await _end_sessions(db, session, tenant_id, plan)
    await _set_marks(db, session, tenant_id, plan)
    if event_ids:
        await db[schema.EVENTS].insert_many(
            [
                event_doc(tenant_id, event_id, draft, count)
                for event_id, draft in zip(event_ids, plan.events, strict=True)
            ],
            session=session,
        )
    return RevocationOutcome(applied=True, count=count, event_ids=event_ids)


async def _delete_grants(
    db: AsyncDatabase[Document],
    session: AsyncClientSession,
    tenant_id: TenantId,
    plan: RevocationPlan,
) -> None:
    which: list[Document] = [
        {"sub": sub, "client_id": client_id} for client_id, sub in plan.delete_grants_of
    ]
    if plan.delete_grant_ids:
        which.append({"grant_id": {"$in": list(plan.delete_grant_ids)}})
    if which:
        await db[schema.GRANTS].delete_many({"tenant_id": tenant_id, "$or": which}, session=session)


async def _end_sessions(
    db: AsyncDatabase[Document],
    session: AsyncClientSession,
    tenant_id: TenantId,
    plan: RevocationPlan,
) -> None:
    """An ended session keeps its first end time (the first written)."""
    if plan.end_sessions:
        await db[schema.SESSIONS].bulk_write(
            [
                UpdateOne(
                    {"tenant_id": tenant_id, "device_session_id": device_session_id},
                    {"$setOnInsert": {"ended_at": plan.revoked_at}},
                    upsert=True,
                )
                for device_session_id in dict.fromkeys(plan.end_sessions)
            ],
            session=session,
        )


async def _set_marks(
    db: AsyncDatabase[Document],
    session: AsyncClientSession,
    tenant_id: TenantId,
    plan: RevocationPlan,
) -> None:
    """A not-before mark keeps the latest ``at``."""
    if plan.marks:
        await db[schema.MARKS].bulk_write(
            [
                UpdateOne(
                    {"tenant_id": tenant_id, "kind": mark.kind.value, "key": mark.key},
                    {"$max": {"at": mark.at}},
                    upsert=True,
                )
                for mark in plan.marks
            ],
            session=session,
        )


async def _reserve_event_ids(
    db: AsyncDatabase[Document], session: AsyncClientSession, tenant_id: TenantId, n: int
) -> tuple[int, ...]:
    """The next ``n`` event ids of the tenant, from its counter document."""
    if not n:
        return ()
    counter = await db[schema.COUNTERS].find_one_and_update(
        {"tenant_id": tenant_id, "name": EVENT_COUNTER},
        {"$inc": {"value": n}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    assert counter is not None  # an upsert returning the document after
    last = int(counter["value"])
    return tuple(range(last - n + 1, last + 1))
