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

PIPELINE: list[Document] = [
    {"$match": {"operationType": "insert"}},
    # The resume token (``_id``) must stay: a change stream refuses to go on without it.
    {"$project": {"_id": 1, "operationType": 1, "fullDocument.tenant_id": 1}},
]
MAX_AWAIT_MS = 500
RETRY_MIN_S = 0.05
RETRY_MAX_S = 0.5
STOP_TIMEOUT_S = 5.0
TENANTS_LIMIT = 65_536
"""Tenants with a count; past it, every count is forgotten at once (the epoch moves)."""
_EPOCH_SHIFT = 40


class EventWatcher:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection
        self._epoch = 0
        self._total = 0
        self._counts: dict[TenantId, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failing = False
        self.connected = False
        """True while the change stream is open: only then do the stamps tell."""

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
        stream = await self._open()
        self._task = asyncio.create_task(self._run(stream), name="mongodb-event-watcher")

    async def stop(self) -> None:
        """Cancel the task and wait for it (bounded); see ``ConfigWatcher.stop`` for why
        the flag matters as much as the cancellation."""
        task, self._task = self._task, None
        self._stopping = True
        self.connected = False
        if task is None:
            return
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
        if not done:
            log.warning("event change stream watcher did not stop within %ss", STOP_TIMEOUT_S)

    async def _open(self) -> AsyncChangeStream[Document]:
        stream = await self._collection.watch(PIPELINE, max_await_time_ms=MAX_AWAIT_MS)
        self._epoch += 1  # inserts before this stream were not counted
        self.connected = True
        return stream

    async def _run(self, stream: AsyncChangeStream[Document] | None) -> None:
        delay = RETRY_MIN_S
        while not self._stopping:
            try:
                if stream is None:
                    stream = await self._open()
                    if self._failing:
                        log.info("event change stream resumed")
                self._failing = False
                delay = RETRY_MIN_S
                while stream.alive and not self._stopping:
                    change = await stream.try_next()
                    if change is not None:
                        document = change.get("fullDocument") or {}
                        self.bump(document.get("tenant_id", ""))
            except PyMongoError as exc:
                if not self._failing:
                    log.warning("event change stream failed, retrying: %s", exc)
                self._failing = True
            except Exception:
                log.exception("event change stream watcher error")
            finally:
                self.connected = False
                if stream is not None:
                    with contextlib.suppress(PyMongoError):
                        await stream.close()
                    stream = None
            if self._stopping:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
