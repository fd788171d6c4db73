"""Token Status List indexes on MongoDB: handing them out, and the reads that build a
list (``app.propagation.status_list``).

The number of indexes a tenant was handed is a document of ``counters`` (name
``status_list``); credentials carry ``status_idx`` only when they have one, and the
partial index ``tenant_status`` serves the range reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from app.errors import NotFound
from app.store.mongodb import schema
from app.store.mongodb.registration import LOOKUP_CHUNK, STAMP
from app.store.mongodb.revocation import tenant_exists
from app.store.sweeps import PendingSweep
from app.types import TenantId, TokenHash

Document = dict[str, Any]

COUNTER = "status_list"
"""The ``counters`` document holding how many indexes the tenant was handed."""


def _counter(tenant_id: TenantId) -> Document:
    return {"tenant_id": tenant_id, "name": COUNTER}


async def allocate(
    db: AsyncDatabase[Document], session: AsyncClientSession, tenant_id: TenantId, count: int
) -> int:
    """Reserve ``count`` indexes in ``session``'s transaction: the first. One atomic
    increment, so two instances never get the same index."""
    if count < 1:
        raise ValueError("count must be at least 1")
    if not await tenant_exists(db, session, tenant_id):
        raise NotFound("unknown tenant")
    counter = await db[schema.COUNTERS].find_one_and_update(
        _counter(tenant_id),
        {"$inc": {"value": count}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    assert counter is not None  # an upsert returning the document after
    return int(counter["value"]) - count


async def allocated(db: AsyncDatabase[Document], tenant_id: TenantId) -> int:
    counter = await db[schema.COUNTERS].find_one(_counter(tenant_id), {"value": True})
    return 0 if counter is None else int(counter["value"])


def _in_range(tenant_id: TenantId, low: int, high: int) -> Document:
    # ``$exists`` repeats the partial index's condition, so that the planner may use it.
    return {"tenant_id": tenant_id, "status_idx": {"$exists": True, "$gte": low, "$lt": high}}


async def revoked(
    db: AsyncDatabase[Document],
    tenant_id: TenantId,
    low: int,
    high: int,
    pending: Sequence[PendingSweep],
) -> list[int]:
    """Indexes in [``low``, ``high``) of revoked credentials, and of live ones that a
    pending sweep covers (``app.store.sweeps``)."""
    credentials = db[schema.CREDENTIALS]
    found = {
        int(doc["status_idx"])
        async for doc in credentials.find(
            {**_in_range(tenant_id, low, high), "revoked_at": {"$ne": None}},
            {"_id": False, "status_idx": True},
        )
    }
    clients = sorted({scope.client_id for sweep in pending for scope in sweep.scopes})
    if clients:
        live = credentials.find(
            {**_in_range(tenant_id, low, high), "revoked_at": None, "client_id": {"$in": clients}},
            {
                "_id": False,
                "status_idx": True,
                "client_id": True,
                "sub": True,
                "exp": True,
                STAMP: True,
            },
        )
        async for doc in live:
            if any(
                sweep.covers(doc["client_id"], doc.get("sub"), doc["exp"], doc.get(STAMP))
                for sweep in pending
            ):
                found.add(int(doc["status_idx"]))
    return sorted(found)


async def stored(
    db: AsyncDatabase[Document], tenant_id: TenantId, token_hashes: Sequence[TokenHash]
) -> dict[TokenHash, int]:
    out: dict[TokenHash, int] = {}
    for start in range(0, len(token_hashes), LOOKUP_CHUNK):
        cursor = db[schema.CREDENTIALS].find(
            {
                "tenant_id": tenant_id,
                "token_hash": {"$in": list(token_hashes[start : start + LOOKUP_CHUNK])},
                "status_idx": {"$exists": True},
            },
            {"_id": False, "token_hash": True, "status_idx": True},
        )
        out.update({bytes(doc["token_hash"]): int(doc["status_idx"]) async for doc in cursor})
    return out
