"""The tenant's own signing keys (``app.propagation.signing_keys``): documents and the
bodies of their write transactions.

One document per kept key; the current one has ``retire_at: null``. Adding a key runs in a
transaction that reads the tenant and writes the tenant's signing-key counter, which
the tenant's deletion writes too: a deletion and a key write of the same tenant meet a
write conflict and one of them is retried (no key outlives its tenant), and two first
uses of one tenant are serialised (the second finds the first one's key and keeps it).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from app.models import SigningKey
from app.store.mongodb import schema
from app.store.mongodb.tenant_guard import guard
from app.types import TenantId

Document = dict[str, Any]

COUNTER = "signing_keys"
"""The tenant's counter document that every key write and the tenant's deletion write."""


def key_doc(key: SigningKey) -> Document:
    return {
        "tenant_id": key.tenant_id,
        "kid": key.kid,
        "alg": key.alg,
        "public_jwk": key.public_jwk,
        "sealed_private": key.sealed_private,
        "created_at": key.created_at,
        "retire_at": key.retire_at,
    }


def key_of(doc: Document) -> SigningKey:
    return SigningKey(
        tenant_id=doc["tenant_id"],
        kid=doc["kid"],
        alg=doc["alg"],
        public_jwk=doc["public_jwk"],
        sealed_private=bytes(doc["sealed_private"]),
        created_at=doc["created_at"],
        retire_at=doc.get("retire_at"),
    )


def in_list_order(keys: list[SigningKey]) -> list[SigningKey]:
    """The current key first, then newest first (``Store.list_signing_keys``)."""
    return sorted(keys, key=lambda k: (k.retire_at is not None, -k.created_at, k.kid))


async def add(
    db: AsyncDatabase[Document],
    session: AsyncClientSession,
    key: SigningKey,
    retire_current_at: int | None,
) -> SigningKey:
    await guard(db, session, key.tenant_id, COUNTER)
    keys = db[schema.SIGNING_KEYS]
    current = await keys.find_one(
        {"tenant_id": key.tenant_id, "retire_at": None}, {"_id": False}, session=session
    )
    if current is not None:
        if retire_current_at is None:
            return key_of(current)  # first use lost the race: the winner's key stays
        await keys.update_one(
            {"tenant_id": key.tenant_id, "kid": current["kid"]},
            {"$set": {"retire_at": retire_current_at}},
            session=session,
        )
    stored = replace(key, retire_at=None)
    await keys.insert_one(key_doc(stored), session=session)
    return stored


def retired_before(tenant_id: TenantId, before: int) -> Document:
    """The filter of ``drop_retired_signing_keys`` (one ``delete_many``: nothing to guard)."""
    return {"tenant_id": tenant_id, "retire_at": {"$ne": None, "$lt": before}}


def same_seal(key: SigningKey) -> Document:
    """The filter of ``reseal_signing_key``: the key, still under the seal that was read."""
    return {"tenant_id": key.tenant_id, "kid": key.kid, "sealed_private": key.sealed_private}
