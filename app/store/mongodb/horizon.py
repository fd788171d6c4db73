"""Each tenant's retention horizon on MongoDB (``app.store.late_registration``): the
greatest cut-off with which its not-before marks or ended sessions were purged, a
document of ``counters`` (name ``retention_horizon``), deleted with the tenant's data.

The purges are no transactions; each advances the horizon in a transaction of its own
before it deletes anything (``retention``). A registration reads the marks and the
horizon in one snapshot, so it sees a mark, or the horizon that stands for it, never
neither.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from app.store.mongodb import schema, write_shards
from app.store.mongodb.revocation import tenant_exists
from app.types import TenantId

Document = dict[str, Any]

COUNTER = "retention_horizon"
"""The ``counters`` document holding the tenant's horizon (``value``)."""


def _counter(tenant_id: TenantId) -> Document:
    return {"tenant_id": tenant_id, "name": COUNTER}


async def advance(
    db: AsyncDatabase[Document], session: AsyncClientSession, tenant_id: TenantId, before: int
) -> None:
    """Move the tenant's horizon to ``before``, never back, in ``session``'s
    transaction; nothing for a tenant that is gone. Writing one of the tenant's write
    shards makes this conflict with the tenant's deletion, so no horizon is left behind
    for a new tenant of the same id."""
    if not await tenant_exists(db, session, tenant_id):
        return
    await write_shards.enter(db, session, tenant_id)
    await db[schema.COUNTERS].update_one(
        _counter(tenant_id), {"$max": {"value": before}}, upsert=True, session=session
    )


async def read(
    db: AsyncDatabase[Document], session: AsyncClientSession | None, tenant_id: TenantId
) -> int | None:
    """The tenant's horizon; None: nothing was purged."""
    found = await db[schema.COUNTERS].find_one(
        _counter(tenant_id), {"value": True, "_id": False}, session=session
    )
    return None if found is None else int(found["value"])
