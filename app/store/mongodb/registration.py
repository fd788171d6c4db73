"""Registering issued credentials: all or none, inside one MongoDB transaction."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from app.errors import Conflict
from app.models import Credential, RegistrationOutcome
from app.store.late_registration import MarkKey, as_registered, wanted_marks
from app.store.mongodb import horizon, schema, write_shards
from app.store.mongodb.documents import HIDDEN, credential_doc, credential_of
from app.types import TenantId, TokenHash

Document = dict[str, Any]

STAMP = "swept"
"""A credential's sweep stamp (``app.store.sweeps``); absent: none."""

LOOKUP_CHUNK = 250
"""Hashes per ``$in`` lookup of what is already stored. One ``$in`` of 10,000 would do on
MongoDB; chunks keep each query small at the cost of a few round trips, and keep the
test server (SecantusDB, whose ``$in`` is quadratic) usable."""


def dedupe(
    credentials: Sequence[Credential],
) -> tuple[dict[TokenHash, tuple[int, Credential]], int]:
    """The batch by token hash (with each one's position), and how many repeats it held.

    A repeat with other fields raises ``Conflict``, naming the position in the batch,
    never the token or its hash.
    """
    batch: dict[TokenHash, tuple[int, Credential]] = {}
    repeats = 0
    for index, credential in enumerate(credentials):
        first, seen = batch.setdefault(credential.token_hash, (index, credential))
        if first == index:
            continue
        if not seen.same_issue(credential):
            raise Conflict(f"credential {index} repeats an earlier one with other fields")
        repeats += 1
    return batch, repeats


async def register(
    db: AsyncDatabase[Document],
    session: AsyncClientSession,
    tenant_id: TenantId,
    credentials: Sequence[Credential],
    retention_s: int,
) -> RegistrationOutcome:
    """Insert what is new, count what is already stored alike, refuse what differs.

    A stored credential is never touched, so a revoked one stays revoked. A new one is
    stored revoked where a not-before mark covers it, or where it was issued before the
    tenant's retention horizon (``app.store.late_registration``),
    with the stamp of the tenant's latest sweep (``app.store.sweeps``); writing that
    stamp's shard makes this transaction conflict with a concurrent tenant deletion or
    sweep start (``write_shards``).
    """
    batch, duplicates = dedupe(credentials)
    if not batch:
        return RegistrationOutcome(registered=0, duplicates=duplicates)
    stamp = await write_shards.enter(db, session, tenant_id)
    collection = db[schema.CREDENTIALS]
    hashes = list(batch)
    for start in range(0, len(hashes), LOOKUP_CHUNK):
        chunk = hashes[start : start + LOOKUP_CHUNK]
        stored = collection.find(
            {"tenant_id": tenant_id, "token_hash": {"$in": chunk}}, HIDDEN, session=session
        )
        async for doc in stored:
            existing = credential_of(doc)
            index, credential = batch.pop(existing.token_hash)
            if not existing.same_issue(credential):
                raise Conflict(f"credential {index} is already registered with other fields")
            duplicates += 1
    if batch:
        new = [c for _, c in batch.values()]
        marks = await marks_of(db, session, tenant_id, new)
        purged_before = await horizon.read(db, session, tenant_id)
        docs = [
            credential_doc(tenant_id, c, retention_s)
            for c in as_registered(new, marks, purged_before, int(time.time()))
        ]
        if stamp is not None:
            for doc in docs:
                doc[STAMP] = stamp
        await collection.insert_many(docs, session=session)
    return RegistrationOutcome(registered=len(batch), duplicates=duplicates)


async def marks_of(
    db: AsyncDatabase[Document],
    session: AsyncClientSession,
    tenant_id: TenantId,
    credentials: Sequence[Credential],
) -> dict[MarkKey, int]:
    """The set marks among the batch's ``wanted_marks``: queries on the marks' index
    keys, a chunk of keys each."""
    found: dict[MarkKey, int] = {}
    for kind, keys in wanted_marks(credentials).items():
        for start in range(0, len(keys), LOOKUP_CHUNK):
            cursor = db[schema.MARKS].find(
                {
                    "tenant_id": tenant_id,
                    "kind": kind.value,
                    "key": {"$in": keys[start : start + LOOKUP_CHUNK]},
                },
                {"key": True, "at": True, "_id": False},
                session=session,
            )
            found.update({(kind, doc["key"]): int(doc["at"]) async for doc in cursor})
    return found
