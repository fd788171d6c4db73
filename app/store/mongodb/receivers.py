"""Receivers of Security Event Tokens: documents, and the bodies of their writes.

``receivers`` holds the configuration (followed by the config watcher), one document
per receiver; ``receiver_state`` its delivery state, one document per receiver, written
on every delivery; ``delivery_log`` its latest attempts, numbered by the state's
``log_seq``.

Writes of the configuration run in a transaction that reads the tenant and writes the
tenant's receiver counter, which the tenant's deletion writes too: a deletion and a
receiver write of the same tenant meet a write conflict and one is retried (no receiver
outlives its tenant), and a tenant's receiver writes are serialised, so the count under
the limit holds. The lease (``claim``) is one conditional ``find_one_and_update`` of the
state document, and a delivery's record a transaction whose first write is a
conditional update of that same document: of two instances, the one that lost the lease
matches nothing and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from app.errors import Conflict
from app.models import DeliveryAttempt, Receiver, ReceiverState
from app.store.mongodb import schema
from app.store.mongodb.tenant_guard import guard
from app.types import TenantId

Document = dict[str, Any]

COUNTER = "receivers"
"""The tenant's counter document that every receiver write and the tenant's deletion
write."""

HIDDEN: Document = {"_id": False}
STATE_FIELDS = (
    "cursor",
    "status",
    "paused_reason",
    "failing_since",
    "attempts",
    "next_attempt_at",
    "last_error",
    "delivered",
    "lease_owner",
    "lease_until",
)
RESUMED: Document = {
    "status": "active",
    "paused_reason": None,
    "failing_since": None,
    "attempts": 0,
    "next_attempt_at": 0,
    "last_error": None,
    "lease_owner": None,
    "lease_until": 0,
}
"""A replaced receiver's state: failures, back-off and lease cleared."""


def key(tenant_id: TenantId, receiver_id: str) -> Document:
    return {"tenant_id": tenant_id, "receiver_id": receiver_id}


# --- documents ------------------------------------------------------------------------------


def receiver_doc(receiver: Receiver) -> Document:
    return {
        "tenant_id": receiver.tenant_id,
        "receiver_id": receiver.receiver_id,
        "delivery": receiver.delivery,
        "events": list(receiver.events),
        "url": receiver.url,
        "authorization_sealed": receiver.authorization_sealed,
        "client_id": receiver.client_id,
        "audience": receiver.audience,
        "created_at": receiver.created_at,
        "updated_at": receiver.updated_at,
    }


def receiver_of(doc: Document) -> Receiver:
    sealed = doc.get("authorization_sealed")
    return Receiver(
        tenant_id=doc["tenant_id"],
        receiver_id=doc["receiver_id"],
        delivery=doc["delivery"],
        events=tuple(doc["events"]),
        url=doc.get("url"),
        authorization_sealed=None if sealed is None else bytes(sealed),
        client_id=doc.get("client_id"),
        audience=doc.get("audience"),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )


def state_of(doc: Document) -> ReceiverState:
    fields: dict[str, Any] = {name: doc[name] for name in STATE_FIELDS}
    return ReceiverState(tenant_id=doc["tenant_id"], receiver_id=doc["receiver_id"], **fields)


def new_state_doc(tenant_id: TenantId, receiver_id: str, cursor: int) -> Document:
    fresh = ReceiverState(tenant_id, receiver_id, cursor)
    return {
        **key(tenant_id, receiver_id),
        **{name: getattr(fresh, name) for name in STATE_FIELDS},
        "log_seq": 0,
    }


def attempt_of(doc: Document) -> DeliveryAttempt:
    return DeliveryAttempt(
        time=doc["time"],
        event_id=doc["event_id"],
        outcome=doc["outcome"],
        status=doc.get("status"),
        detail=doc.get("detail"),
        duration_ms=doc.get("duration_ms"),
    )


def attempt_doc(tenant_id: TenantId, receiver_id: str, seq: int, a: DeliveryAttempt) -> Document:
    return {
        **key(tenant_id, receiver_id),
        "seq": seq,
        "time": a.time,
        "event_id": a.event_id,
        "outcome": a.outcome,
        "status": a.status,
        "detail": a.detail,
        "duration_ms": a.duration_ms,
    }


# --- transaction bodies ------------------------------------------------------------------


async def put(
    db: AsyncDatabase[Document],
    session: AsyncClientSession,
    receiver: Receiver,
    cursor: int,
    limit: int | None,
    resume: bool,
) -> tuple[Receiver, bool]:
    tid, rid = receiver.tenant_id, receiver.receiver_id
    await guard(db, session, tid, COUNTER)
    receivers = db[schema.RECEIVERS]
    old = await receivers.find_one(key(tid, rid), {"created_at": True}, session=session)
    if old is None:
        if limit is not None:
            count = await receivers.count_documents({"tenant_id": tid}, session=session)
            if count >= limit:
                raise Conflict(f"the tenant has {count} receivers; at most {limit} are allowed")
        stored = receiver
        await receivers.insert_one(receiver_doc(stored), session=session)
        # A receiver deleted and created again starts afresh.
        await db[schema.DELIVERY_LOG].delete_many(key(tid, rid), session=session)
        await db[schema.RECEIVER_STATE].replace_one(
            key(tid, rid), new_state_doc(tid, rid, cursor), upsert=True, session=session
        )
        return stored, True
    stored = replace(receiver, created_at=old["created_at"])
    await receivers.replace_one(key(tid, rid), receiver_doc(stored), session=session)
    if resume:
        await db[schema.RECEIVER_STATE].update_one(
            key(tid, rid), {"$set": RESUMED}, session=session
        )
    return stored, False


async def delete(
    db: AsyncDatabase[Document],
    session: AsyncClientSession,
    tenant_id: TenantId,
    receiver_id: str,
) -> bool:
    result = await db[schema.RECEIVERS].delete_one(key(tenant_id, receiver_id), session=session)
    await db[schema.RECEIVER_STATE].delete_one(key(tenant_id, receiver_id), session=session)
    await db[schema.DELIVERY_LOG].delete_many(key(tenant_id, receiver_id), session=session)
    return result.deleted_count > 0


async def claim(
    db: AsyncDatabase[Document],
    tenant_id: TenantId,
    receiver_id: str,
    owner: str,
    now: int,
    until: int,
) -> ReceiverState | None:
    # The receiver document first: after a tenant's deletion its state documents stay
    # until the deletion's chunks reach them, and must not be delivered for meanwhile.
    if await db[schema.RECEIVERS].find_one(key(tenant_id, receiver_id), {"_id": True}) is None:
        return None
    free = [{"lease_owner": None}, {"lease_owner": owner}, {"lease_until": {"$lte": now}}]
    doc = await db[schema.RECEIVER_STATE].find_one_and_update(
        {**key(tenant_id, receiver_id), "$or": free},
        {"$set": {"lease_owner": owner, "lease_until": until}},
        projection=HIDDEN,
        return_document=ReturnDocument.AFTER,
    )
    return None if doc is None else state_of(doc)


class LeaseLost(Exception):
    """Ends a record's transaction without writing (aborted, not retried)."""


async def record(
    db: AsyncDatabase[Document],
    session: AsyncClientSession,
    state: ReceiverState,
    owner: str,
    log: Sequence[DeliveryAttempt],
    keep_log: int,
) -> None:
    """Raises ``LeaseLost`` when the lease is another's or the receiver is gone."""
    tid, rid = state.tenant_id, state.receiver_id
    found = await db[schema.RECEIVERS].find_one(key(tid, rid), {"_id": True}, session=session)
    if found is None:
        raise LeaseLost
    held = key(tid, rid) if owner == "" else {**key(tid, rid), "lease_owner": owner}
    changes = {name: getattr(state, name) for name in STATE_FIELDS[1:-2]}
    doc = await db[schema.RECEIVER_STATE].find_one_and_update(
        held,
        {"$set": changes, "$max": {"cursor": state.cursor}, "$inc": {"log_seq": len(log)}},
        projection={"log_seq": True, "_id": False},
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    if doc is None:
        raise LeaseLost
    if not log:
        return
    last = int(doc["log_seq"])
    first = last - len(log) + 1
    entries = db[schema.DELIVERY_LOG]
    await entries.insert_many(
        [attempt_doc(tid, rid, first + n, a) for n, a in enumerate(log)], session=session
    )
    await entries.delete_many({**key(tid, rid), "seq": {"$lte": last - keep_log}}, session=session)
