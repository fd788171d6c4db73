"""``events_stamp`` and ``events_generation`` on MongoDB: a change stream of the events.

Every instance follows the inserts into the events collection (projected to the tenant
id: an event's fields are of no use here) and counts them per tenant, and in all. A
revocation's events are inserted in its transaction, so the stream delivers them once
they are committed, whichever instance committed them; a reader woken by a change reads
them with the store's majority read concern.

Unlike the configuration watcher, this one never resumes a stream: an insert may pass
unseen while no stream is open, so the stamps answer None until a new stream is open,
and each new stream starts a new epoch (every stamp then differs from every stamp read
before), which wakes every waiter to read the store once.
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from app.store.mongodb.change_stream import ChangeStreamFollower
from app.types import TenantId

Document = dict[str, Any]

log = logging.getLogger(__name__)

PIPELINE: list[Document] = [
    {"$match": {"operationType": "insert"}},
    # The resume token (``_id``) must stay: a change stream refuses to go on without it.
    {"$project": {"_id": 1, "operationType": 1, "fullDocument.tenant_id": 1}},
]
TENANTS_LIMIT = 65_536
"""Tenants with a count; past it, every count is forgotten at once (the epoch moves)."""
_EPOCH_SHIFT = 40


class EventWatcher:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._epoch = 0
        self._total = 0
        self._counts: dict[TenantId, int] = {}
        self._stream = ChangeStreamFollower(
            "event", collection, PIPELINE, self._changed, log, on_open=self._new_epoch
        )

    @property
    def connected(self) -> bool:
        """True while the change stream is open: only then do the stamps tell."""
        return self._stream.connected

    def stamp(self, tenant_id: TenantId) -> int | None:
        if not self.connected:
            return None
        return (self._epoch << _EPOCH_SHIFT) | self._counts.get(tenant_id, 0)

    def generation(self) -> int | None:
        if not self.connected:
            return None
        return (self._epoch << _EPOCH_SHIFT) | self._total

    def bump(self, tenant_id: TenantId) -> None:
        if len(self._counts) >= TENANTS_LIMIT and tenant_id not in self._counts:
            self._counts.clear()
            self._epoch += 1
        self._counts[tenant_id] = self._counts.get(tenant_id, 0) + 1
        self._total += 1

    async def start(self) -> None:
        """Open the stream now, so that no insert after ``open()`` returns is missed."""
        await self._stream.start()

    async def stop(self) -> None:
        await self._stream.stop()

    def _new_epoch(self) -> None:
        self._epoch += 1  # inserts before this stream were not counted

    def _changed(self, change: Document) -> None:
        document = change.get("fullDocument") or {}
        self.bump(document.get("tenant_id", ""))
