"""The guard of a transaction that writes a tenant's configuration (plugins, signing
keys, receivers): the tenant must exist, read in the writing transaction.

Reading is not enough under snapshot isolation: a deletion committed after this
snapshot would not see a first document inserted here, and a new tenant of the same id
would inherit it. So the guard also writes one of the tenant's ``counters`` documents,
named for what the transaction writes, which the tenant's deletion writes too: one of
the two meets a write conflict and is retried. It also serialises the tenant's writes of
that kind, so two first writes do not both take the same version or slot.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from app.errors import NotFound
from app.store.mongodb import schema
from app.store.mongodb.revocation import tenant_exists
from app.types import TenantId

Document = dict[str, Any]


async def guard(
    db: AsyncDatabase[Document], session: AsyncClientSession, tenant_id: TenantId, counter: str
) -> None:
    """Raises ``NotFound`` for a tenant that does not exist (in this snapshot)."""
    if not await tenant_exists(db, session, tenant_id):
        raise NotFound("unknown tenant")
    await db[schema.COUNTERS].update_one(
        {"tenant_id": tenant_id, "name": counter},
        {"$inc": {"value": 1}},
        upsert=True,
        session=session,
    )
