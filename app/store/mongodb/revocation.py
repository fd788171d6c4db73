"""``RevocationPlan``s of one tenant applied together inside one MongoDB transaction.

The plans of a batch (see ``group_commit``) are decided one after the other, in order,
as if each had its own transaction: a plan whose primary is missing or already revoked
(by the snapshot, or by an earlier plan of the batch), or whose deny entry exists, is not
applied and changes nothing. Their writes are then sent together, a few commands for the
whole batch, and committed at once.

Credentials are found by exactly the keys of one index and filtered here: MongoDB would
serve a filter with more conditions from the same index, but SecantusDB (the test server)
scans the collection for anything but an index's exact keys. The updates then name what
was found by its (unique) token hash, without testing liveness again: a transaction's
reads and writes see one snapshot, and a document another transaction has changed since
is a write conflict, which retries the whole batch.

Event ids come from a per-tenant counter document, updated first in the transaction:
transactions of one tenant (from other instances) meet there, the later one is retried,
so ids grow in commit order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import DeleteMany, ReturnDocument, UpdateMany, UpdateOne
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
from app.store.mongodb.registration import STAMP
from app.store.sweeps import PendingSweep
from app.types import TenantId, TokenHash

Document = dict[str, Any]

EVENT_COUNTER = "events"

SELECTED_FIELDS: Document = {
    "token_hash": True,
    "type": True,
    "client_id": True,
    "sub": True,
    "grant_id": True,
    "device_session_id": True,
    "exp": True,
    "revoked_at": True,
    STAMP: True,
    "_id": False,
}
"""What ``selects`` and ``is_live`` read."""

NOT_APPLIED = RevocationOutcome(applied=False, count=0)

UPDATE_CHUNK = 10_000
"""Token hashes per update command (a command is at most 16 MB)."""


Bucket = tuple[tuple[str, Any], ...]
"""The credentials a selector names, by the keys of its index after the tenant id:
``(("grant_id", "g1"),)``. ``selects`` tests the rest (the types)."""


def bucket(selector: Selector) -> Bucket:
    match selector:
        case ByHash(token_hash):
            return (("token_hash", token_hash),)
        case ByGrant(grant_id):
            return (("grant_id", grant_id),)
        case ByClientSubject(client_id, sub):
            return (("sub", sub), ("client_id", client_id))
        case ByClient(client_id):
            return (("client_id", client_id),)
        case BySession(device_session_id):
            return (("device_session_id", device_session_id),)


def bucket_queries(tenant_id: TenantId, buckets: Iterable[Bucket]) -> list[Document]:
    """Queries for the credentials of ``buckets``: one per index and leading values, the
    index's keys exactly, with an ``$in`` of the last key's values."""
    last_values: dict[Bucket, list[Any]] = {}
    for keys in dict.fromkeys(buckets):
        *leading, (last, value) = keys
        last_values.setdefault((*leading, (last, None)), []).append(value)
    return [
        {"tenant_id": tenant_id, **dict(leading), last: {"$in": values}}
        for (*leading, (last, _)), values in last_values.items()
    ]


def buckets_of(doc: Document, shapes: Iterable[tuple[str, ...]]) -> Iterator[Bucket]:
    """The buckets of each shape (key names) that ``doc`` falls in."""
    for shape in shapes:
        yield tuple((key, doc.get(key)) for key in shape)


def selects(selector: Selector, doc: Document) -> bool:
    """Whether ``selector`` names the credential ``doc`` (of the selector's tenant)."""
    match selector:
        case ByHash(token_hash):
            return bool(doc["token_hash"] == token_hash)
        case ByGrant(grant_id, types):
            return doc.get("grant_id") == grant_id and _of_types(doc, types)
        case ByClientSubject(client_id, sub, types):
            return (
                doc.get("client_id") == client_id
                and doc.get("sub") == sub
                and _of_types(doc, types)
            )
        case ByClient(client_id):
            return doc.get("client_id") == client_id
        case BySession(device_session_id, types):
            return doc.get("device_session_id") == device_session_id and _of_types(doc, types)


def _of_types(doc: Document, types: frozenset[TokenType]) -> bool:
    return types >= ALL_TOKEN_TYPES or doc["type"] in {t.value for t in types}


def is_live(doc: Document, at: int) -> bool:
    """Not revoked and not expired at ``at`` (as the snapshot has it)."""
    return doc.get("revoked_at") is None and doc["exp"] > at


def swept(doc: Document, pending: Sequence[PendingSweep]) -> bool:
    """Whether a pending sweep covers the credential: revoked, though not written yet."""
    client_id, sub, exp, stamp = doc["client_id"], doc.get("sub"), doc["exp"], doc.get(STAMP)
    return any(sweep.covers(client_id, sub, exp, stamp) for sweep in pending)


@dataclass
class _Batch:
    """What the plans decided so far see, and what they will write, in plan order."""

    tenant_id: TenantId
    retention_s: int
    found: dict[Bucket, list[Document]]
    """The credentials the plans name (primaries and selectors), as the snapshot has them."""
    denied: set[str]
    """Deny keys stored in the snapshot or added by an earlier plan."""
    next_event_id: int
    pending: Sequence[PendingSweep] = ()
    """The tenant's pending sweeps: what they cover is revoked already."""
    revoked: set[TokenHash] = field(default_factory=set)
    """Revoked by an earlier plan."""
    revocations: list[UpdateMany] = field(default_factory=list)
    denies: list[UpdateOne] = field(default_factory=list)
    grants: list[DeleteMany] = field(default_factory=list)
    sessions: list[UpdateOne] = field(default_factory=list)
    marks: list[UpdateOne] = field(default_factory=list)
    events: list[Document] = field(default_factory=list)

    def applicable(self, plan: RevocationPlan) -> bool:
        if plan.primary is not None:
            doc = next(iter(self.found.get(bucket(ByHash(plan.primary)), [])), None)
            if doc is None or doc.get("revoked_at") is not None or plan.primary in self.revoked:
                return False
            if swept(doc, self.pending):
                return False
        return plan.primary_deny is None or plan.primary_deny.key not in self.denied


async def tenant_exists(
    db: AsyncDatabase[Document], session: AsyncClientSession, tenant_id: TenantId
) -> bool:
    """Read in the writing transaction: data is written only for a tenant that exists."""
    found = await db[schema.TENANTS].find_one(
        {"tenant_id": tenant_id}, {"_id": True}, session=session
    )
    return found is not None


async def apply_plans(
    db: AsyncDatabase[Document],
    session: AsyncClientSession,
    tenant_id: TenantId,
    plans: Sequence[RevocationPlan],
    retention_s: int,
    pending: Sequence[PendingSweep] = (),
) -> list[RevocationOutcome]:
    """Apply ``plans`` in order in ``session``'s transaction: one outcome each.
    ``pending``: the tenant's pending sweeps (``app.store.sweeps``), whose credentials
    are not live any more.

    Nothing is applied for a tenant that no longer exists: a request may have resolved
    its tenant before the tenant was deleted, and its rows would be inherited by a new
    tenant of the same id. The deletion writes the event counter that this transaction
    writes too, so the two cannot both commit on snapshots that miss each other.
    """
    if not await tenant_exists(db, session, tenant_id):
        return [NOT_APPLIED for _ in plans]
    batch = _Batch(
        tenant_id,
        retention_s,
        found=await _find_named(db, session, tenant_id, plans),
        denied=await _find_denied(db, session, tenant_id, plans),
        next_event_id=0,
        pending=pending,
    )
    applicable = [plan for plan in plans if batch.applicable(plan)]
    if not applicable:
        return [NOT_APPLIED for _ in plans]
    wanted = sum(len(plan.events) for plan in applicable)
    if wanted:
        batch.next_event_id = await reserve_event_ids(db, session, tenant_id, wanted)
    outcomes = [_decide(batch, plan) for plan in plans]
    unused = wanted - sum(len(outcome.event_ids) for outcome in outcomes)
    if unused:  # an earlier plan of the batch took a later one's primary
        await reserve_event_ids(db, session, tenant_id, -unused)
    await _write(db, session, batch)
    return outcomes


def _decide(batch: _Batch, plan: RevocationPlan) -> RevocationOutcome:
    """Whether ``plan`` applies after the plans before it, and if so what it writes."""
    if not batch.applicable(plan):
        return NOT_APPLIED
    taken = _live_selected(batch, plan)
    batch.revoked.update(taken)
    tenant_id = batch.tenant_id
    # Chunked: a client-wide revocation can name more hashes than one command may hold.
    for start in range(0, len(taken), UPDATE_CHUNK):
        batch.revocations.append(
            UpdateMany(
                {
                    "tenant_id": tenant_id,
                    "token_hash": {"$in": taken[start : start + UPDATE_CHUNK]},
                },
                {"$set": {"revoked_at": plan.revoked_at, "revoked_cause": plan.cause}},
            )
        )
    if plan.primary_deny is not None:
        deny = plan.primary_deny
        expire = expire_at(deny.exp, batch.retention_s)
        batch.denied.add(deny.key)
        batch.denies.append(
            UpdateOne(
                {"tenant_id": tenant_id, "key": deny.key},
                {"$setOnInsert": {"exp": deny.exp, schema.EXPIRE_AT: expire}},
                upsert=True,
            )
        )
    _plan_side_effects(batch, plan)
    first, batch.next_event_id = batch.next_event_id, batch.next_event_id + len(plan.events)
    event_ids = tuple(range(first, batch.next_event_id))
    # A denied JWT is one credential taken down, beside the registered ones.
    count = len(taken) + (plan.primary_deny is not None)
    batch.events += [
        event_doc(tenant_id, event_id, draft, count)
        for event_id, draft in zip(event_ids, plan.events, strict=True)
    ]
    return RevocationOutcome(applied=True, count=count, event_ids=event_ids)


def _live_selected(batch: _Batch, plan: RevocationPlan) -> list[TokenHash]:
    """The credentials ``plan`` takes down: live at ``plan.revoked_at``, not taken by an
    earlier plan, and named by one of its selectors."""
    taken: dict[TokenHash, None] = {}

    def take(doc: Document, selector: Selector) -> None:
        token_hash = doc["token_hash"]
        live = is_live(doc, plan.revoked_at) and token_hash not in batch.revoked
        if live and selects(selector, doc) and not swept(doc, batch.pending):
            taken[token_hash] = None

    for selector in plan.selectors:
        for doc in batch.found.get(bucket(selector), []):
            take(doc, selector)
    return list(taken)


def _plan_side_effects(batch: _Batch, plan: RevocationPlan) -> None:
    """Grant records deleted, sessions ended (each keeps its first end time, the first
    written), not-before marks set (each keeps the latest)."""
    tenant_id = batch.tenant_id
    batch.grants += [
        DeleteMany({"tenant_id": tenant_id, "sub": sub, "client_id": client_id})
        for client_id, sub in dict.fromkeys(plan.delete_grants_of)
    ]
    batch.grants += [
        DeleteMany({"tenant_id": tenant_id, "grant_id": grant_id})
        for grant_id in dict.fromkeys(plan.delete_grant_ids)
    ]
    # The first end keeps its time; a later one may only make the tokens end too (a
    # session ended before the field existed has none, and its tokens ended).
    ending: Document = (
        {"$setOnInsert": {"ended_at": plan.revoked_at}, "$set": {"tokens_end": True}}
        if plan.session_tokens_end
        else {"$setOnInsert": {"ended_at": plan.revoked_at, "tokens_end": False}}
    )
    batch.sessions += [
        UpdateOne(
            {"tenant_id": tenant_id, "device_session_id": device_session_id},
            ending,
            upsert=True,
        )
        for device_session_id in dict.fromkeys(plan.end_sessions)
    ]
    batch.marks += [
        UpdateOne(
            {"tenant_id": tenant_id, "kind": mark.kind.value, "key": mark.key},
            {"$max": {"at": mark.at}},
            upsert=True,
        )
        for mark in plan.marks
    ]


async def _find_named(
    db: AsyncDatabase[Document],
    session: AsyncClientSession,
    tenant_id: TenantId,
    plans: Sequence[RevocationPlan],
) -> dict[Bucket, list[Document]]:
    """The credentials the plans' primaries and selectors name, by bucket: a few queries
    for the whole batch, each on the keys of one index."""
    primaries = [ByHash(plan.primary) for plan in plans if plan.primary is not None]
    selectors = [selector for plan in plans for selector in plan.selectors]
    wanted: dict[Bucket, list[Document]] = {bucket(s): [] for s in [*primaries, *selectors]}
    found: dict[TokenHash, Document] = {}
    for query in bucket_queries(tenant_id, wanted):
        async for doc in db[schema.CREDENTIALS].find(query, SELECTED_FIELDS, session=session):
            found[doc["token_hash"]] = doc
    shapes = {tuple(key for key, _ in keys) for keys in wanted}
    for doc in found.values():
        for keys in buckets_of(doc, shapes):
            if keys in wanted:
                wanted[keys].append(doc)
    return wanted


async def _find_denied(
    db: AsyncDatabase[Document],
    session: AsyncClientSession,
    tenant_id: TenantId,
    plans: Sequence[RevocationPlan],
) -> set[str]:
    keys = list(dict.fromkeys(p.primary_deny.key for p in plans if p.primary_deny is not None))
    if not keys:
        return set()
    found = db[schema.DENY_LIST].find(
        {"tenant_id": tenant_id, "key": {"$in": keys}}, {"key": True, "_id": False}, session=session
    )
    return {doc["key"] async for doc in found}


async def _write(db: AsyncDatabase[Document], session: AsyncClientSession, batch: _Batch) -> None:
    """One command per collection for the whole batch, in plan order."""
    writes: list[tuple[str, Sequence[Any]]] = [
        (schema.CREDENTIALS, batch.revocations),
        (schema.DENY_LIST, batch.denies),
        (schema.GRANTS, batch.grants),
        (schema.SESSIONS, batch.sessions),
        (schema.MARKS, batch.marks),
    ]
    for name, requests in writes:
        if requests:
            await db[name].bulk_write(list(requests), session=session)
    if batch.events:
        await db[schema.EVENTS].insert_many(batch.events, session=session)


async def reserve_event_ids(
    db: AsyncDatabase[Document], session: AsyncClientSession, tenant_id: TenantId, n: int
) -> int:
    """Take the tenant's next ``n`` event ids (give back ``-n``); returns the first."""
    counter = await db[schema.COUNTERS].find_one_and_update(
        {"tenant_id": tenant_id, "name": EVENT_COUNTER},
        {"$inc": {"value": n}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    assert counter is not None  # an upsert returning the document after
    return int(counter["value"]) - n + 1
