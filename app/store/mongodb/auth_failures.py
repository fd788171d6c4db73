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

import asyncio
import contextlib
import logging
from typing import Any

from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from app.types import TenantId

Document = dict[str, Any]

log = logging.getLogger(__name__)

PIPELINE: list[Document] = [{"$match": {"operationType": "insert"}}]
MAX_AWAIT_MS = 500
RETRY_MIN_S = 0.05
RETRY_MAX_S = 0.5
STOP_TIMEOUT_S = 5.0
KEYS_LIMIT = 65_536
"""Keys with a stamp; past it, every stamp is forgotten at once (the epoch moves)."""


class FailureStamps:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection
        self._epoch = 0
        self._inserts: dict[tuple[TenantId, str], int] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failing = False
        self.connected = False

    def read(self, tenant_id: TenantId, key: str) -> int | None:
        """None until the stream is open (started by the first call) and while it fails."""
        if self._task is None and not self._stopping:
            self._task = asyncio.create_task(self._run(), name="mongodb-auth-failure-watcher")
        if not self.connected:
            return None
        return (self._epoch << 32) | self._inserts.get((tenant_id, key), 0)

    def bump(self, tenant_id: TenantId, key: str) -> None:
        if len(self._inserts) >= KEYS_LIMIT:
            self._inserts.clear()
            self._epoch += 1
        slot = (tenant_id, key)
        self._inserts[slot] = self._inserts.get(slot, 0) + 1

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._stopping = True
        if task is None:
            return
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
        if not done:
            log.warning("auth failure change stream did not stop within %ss", STOP_TIMEOUT_S)

    async def _run(self) -> None:
        delay = RETRY_MIN_S
        while not self._stopping:
            stream: AsyncChangeStream[Document] | None = None
            try:
                stream = await self._collection.watch(PIPELINE, max_await_time_ms=MAX_AWAIT_MS)
                self.connected = True
                if self._failing:
                    log.info("auth failure change stream resumed")
                self._failing = False
                delay = RETRY_MIN_S
                while stream.alive and not self._stopping:
                    change = await stream.try_next()
                    if change is not None:
                        document = change.get("fullDocument") or {}
                        self.bump(document.get("tenant_id", ""), document.get("key", ""))
            except PyMongoError as exc:
                if not self._failing:
                    log.warning("auth failure change stream failed, retrying: %s", exc)
                self._failing = True
            except Exception:
                log.exception("auth failure change stream watcher error")
            finally:
                # Inserts may pass unseen from here on: forget every stamp.
                self.connected = False
                self._epoch += 1
                if stream is not None:
                    with contextlib.suppress(PyMongoError):
                        await stream.close()
            if self._stopping:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
