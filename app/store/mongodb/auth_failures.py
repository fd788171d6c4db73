"""``auth_failures_stamp`` on MongoDB: a change stream of the failure counts' inserts.

The first failure of a key in a window inserts its count document; every instance
follows those inserts and moves the key's stamp, so a count of 0 it read before is known
to be stale as soon as the insert reaches it (the stream delivers it about when the
writer's acknowledgement arrives). Later failures of the window are updates of a count
already above 0, which no instance remembers as 0, so inserts are all it follows.

Unlike the configuration watcher, this one never resumes: when its stream fails, it
forgets every stamp (the epoch moves) and answers None, so callers read the counts,
until a new stream is open.
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from app.store.mongodb.change_stream import ChangeStreamFollower
from app.types import TenantId

Document = dict[str, Any]

log = logging.getLogger(__name__)

PIPELINE: list[Document] = [{"$match": {"operationType": "insert"}}]
KEYS_LIMIT = 65_536
"""Keys with a stamp; past it, every stamp is forgotten at once (the epoch moves)."""


class FailureStamps:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._epoch = 0
        self._inserts: dict[tuple[TenantId, str], int] = {}
        # Inserts may pass unseen once a stream is lost: forget every stamp then.
        self._stream = ChangeStreamFollower(
            "auth failure", collection, PIPELINE, self._changed, log, on_lost=self._new_epoch
        )

    def read(self, tenant_id: TenantId, key: str) -> int | None:
        """None until the stream is open (started by the first call) and while it fails."""
        self._stream.start_soon()
        if not self._stream.connected:
            return None
        return (self._epoch << 32) | self._inserts.get((tenant_id, key), 0)

    def bump(self, tenant_id: TenantId, key: str) -> None:
        if len(self._inserts) >= KEYS_LIMIT:
            self._inserts.clear()
            self._epoch += 1
        slot = (tenant_id, key)
        self._inserts[slot] = self._inserts.get(slot, 0) + 1

    async def stop(self) -> None:
        await self._stream.stop()

    def _new_epoch(self) -> None:
        self._epoch += 1

    def _changed(self, change: Document) -> None:
        document = change.get("fullDocument") or {}
        self.bump(document.get("tenant_id", ""), document.get("key", ""))
