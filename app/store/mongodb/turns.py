"""Revocations of one tenant take turns within this process.

Every revocation that appends events updates its tenant's event counter document, so two
of them in flight at once always meet in a write conflict: one is aborted and retried,
having done its work for nothing. Between processes that is how it has to be; within one
process a queue per tenant does better: no wasted work, no retry storms, first come first
served. Tenants do not wait for each other.

When the store turns out to be unreachable during a turn, everyone who was already
waiting fails at once instead of each waiting for its own server selection timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from pymongo.errors import PyMongoError

from app.errors import StoreUnavailable
from app.store.mongodb.errors import is_unavailable
from app.types import TenantId


@dataclass
class _Queue:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0
    failed_at: float = float("-inf")
    """When a turn last found the store unreachable."""


class Turns:
    def __init__(self) -> None:
        self._queues: dict[TenantId, _Queue] = {}

    @asynccontextmanager
    async def turn(self, tenant_id: TenantId) -> AsyncIterator[None]:
        queue = self._queues.setdefault(tenant_id, _Queue())
        queue.waiting += 1
        asked_at = time.monotonic()
        try:
            async with queue.lock:
                if queue.failed_at >= asked_at:
                    raise StoreUnavailable("MongoDB unavailable (while queued)")
                try:
                    yield
                except PyMongoError as exc:
                    if is_unavailable(exc):
                        queue.failed_at = time.monotonic()
                    raise
        finally:
            queue.waiting -= 1
            if not queue.waiting:
                del self._queues[tenant_id]
