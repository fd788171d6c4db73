"""Reads of one subject across the tenant's clients (MongoDB)."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from app.store.mongodb import schema
from app.store.mongodb.documents import Document
from app.types import TenantId


async def subject_sessions(
    db: AsyncDatabase[Document], tenant_id: TenantId, sub: str, now: int
) -> list[str]:
    """The subject's sessions not yet ended with their tokens (an SPID logout's stay, so a
    Global Token Revocation still takes their tokens down): the ``tenant_sub_client``
    index's range of the subject, then the ended ones among them on ``tenant_session``."""
    sessions: set[str] = set()
    cursor = db[schema.CREDENTIALS].find(
        {
            "tenant_id": tenant_id,
            "sub": sub,
            "exp": {"$gt": now},
            "device_session_id": {"$ne": None},
        },
        {"device_session_id": True, "_id": False},
    )
    async for doc in cursor:
        sessions.add(doc["device_session_id"])
    if not sessions:
        return []
    ended = db[schema.SESSIONS].find(
        {
            "tenant_id": tenant_id,
            "device_session_id": {"$in": sorted(sessions)},
            **schema.SESSION_TOKENS_ENDED,
        },
        {"device_session_id": True, "_id": False},
    )
    async for doc in ended:
        sessions.discard(doc["device_session_id"])
    return sorted(sessions)
