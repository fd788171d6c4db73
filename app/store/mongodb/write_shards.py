"""Per-tenant documents that every registration and grant write writes one of, and that
the tenant's deletion and every sweep start write all of: so that they conflict.

A MongoDB transaction reads one snapshot, and reads never conflict, only writes to one
document do. A registration that found its tenant in a snapshot taken before the
tenant's deletion committed could otherwise insert its rows after the deletion's chunks
had gone by, leaving them to a new tenant of that id; one that read before a sweep was
committed would store credentials that the sweep then missed. Writing a document the
other also wrote makes the later of the two fail with a write conflict, and its retry
reads a snapshot where the tenant is gone, or where the sweep is pending (the shard
holds its id: the registration's stamp, ``app.store.sweeps``).

Registrations of one tenant write one of ``SHARDS`` documents at random, so two of them
at once meet only one time in ``SHARDS`` (a retry, not an error).
"""

from __future__ import annotations

import random
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from app.store.mongodb import schema
from app.types import TenantId

Document = dict[str, Any]

SHARDS = 16
PREFIX = "writes:"
SWEEP = "sweep"
"""The field holding the tenant's latest sweep id."""


def _shard(tenant_id: TenantId, n: int) -> Document:
    return {"tenant_id": tenant_id, "name": f"{PREFIX}{n}"}


async def enter(
    db: AsyncDatabase[Document], session: AsyncClientSession, tenant_id: TenantId
) -> int | None:
    """Write one of the tenant's shards in ``session``'s transaction: the tenant's latest
    sweep id (None when it never had one), the stamp of what is registered now."""
    n = random.randrange(SHARDS)  # noqa: S311 - spreading writes, not a secret
    shard = await db[schema.COUNTERS].find_one_and_update(
        _shard(tenant_id, n),
        {"$inc": {"writes": 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    return None if shard is None else shard.get(SWEEP)


async def write_all(
    db: AsyncDatabase[Document],
    session: AsyncClientSession,
    tenant_id: TenantId,
    update: Document,
) -> None:
    """Apply ``update`` to every shard of the tenant (creating those that are missing)."""
    await db[schema.COUNTERS].bulk_write(
        [UpdateOne(_shard(tenant_id, n), update, upsert=True) for n in range(SHARDS)],
        session=session,
    )
