"""``config_version()`` for MongoDB: an in-memory counter that other instances' writes move.

A background task follows one change stream on the database, filtered to the
configuration collections (``CONFIG_COLLECTIONS``: tenants, issuers, clients, admin keys,
plugins), and bumps the counter on every change. It keeps the resume token and, after an
error, reopens the stream from it (or from now, when the server no longer has that
history), bumping once more since something may have been missed. As a last resort the
version also moves every ``refresh_interval_s``, so a notification lost any other way
heals by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure, PyMongoError

from app.store.mongodb.schema import CONFIG_COLLECTIONS

Document = dict[str, Any]

log = logging.getLogger(__name__)

PIPELINE: list[Document] = [{"$match": {"ns.coll": {"$in": list(CONFIG_COLLECTIONS)}}}]
MAX_AWAIT_MS = 500
RETRY_MIN_S = 0.05
RETRY_MAX_S = 0.5
STOP_TIMEOUT_S = 5.0
UNRESUMABLE = frozenset({260, 280, 286})
"""InvalidResumeToken, ChangeStreamFatalError, ChangeStreamHistoryLost: start from now."""


class ConfigWatcher:
    def __init__(self, db: AsyncDatabase[Document], refresh_interval_s: float) -> None:
        self._db = db
        self._refresh_interval_s = refresh_interval_s
        self._changes = 0
        self._resume_token: Mapping[str, Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failing = False
        self._started = time.monotonic()
        self.connected = False
        """True while the change stream is open (False during an outage)."""

    def version(self) -> int:
        """Changes seen plus refresh periods elapsed: both only grow, so their sum moves
        whenever either does."""
        periods = int((time.monotonic() - self._started) / self._refresh_interval_s)
        return self._changes + periods

    def bump(self) -> None:
        self._changes += 1

    async def start(self) -> None:
        """Open the stream now, so that no change after ``open()`` returns is missed."""
        stream = await self._open()
        self.connected = True
        self._task = asyncio.create_task(self._run(stream), name="mongodb-config-watcher")

    async def stop(self) -> None:
        """Cancel the task and wait for it (bounded).

        The flag matters as much as the cancellation: when a change stream is cancelled
        mid-``getMore``, PyMongo closes it, and an error from that close replaces the
        ``CancelledError`` (PyMongo 4.x), so the cancellation can arrive as a PyMongo
        error that the loop would otherwise take for a network failure and retry.
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
        if not done:
            log.warning("config change stream watcher did not stop within %ss", STOP_TIMEOUT_S)
        elif not task.cancelled() and task.exception() is not None:
            log.warning("config change stream watcher failed: %r", task.exception())

    async def _open(self) -> AsyncChangeStream[Document]:
        return await self._db.watch(
            PIPELINE, resume_after=self._resume_token, max_await_time_ms=MAX_AWAIT_MS
        )

    async def _run(self, stream: AsyncChangeStream[Document] | None) -> None:
        delay = RETRY_MIN_S
        while not self._stopping:
            try:
                if stream is None:
                    stream = await self._open()
                    self.bump()  # reopened: changes may have happened meanwhile
                    if self._failing:
                        log.info("config change stream resumed")
                self._failing = False
                self.connected = True
                delay = RETRY_MIN_S
                await self._follow(stream)
            except OperationFailure as exc:
                if exc.code in UNRESUMABLE:
                    self._resume_token = None
                self._failed(exc)
            except PyMongoError as exc:
                self._failed(exc)
            except Exception:
                log.exception("config change stream watcher error")
            finally:
                self.connected = False
                if stream is not None:
                    with contextlib.suppress(PyMongoError):
                        await stream.close()
                    stream = None
            if self._stopping:
                return
            self.bump()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    def _failed(self, exc: PyMongoError) -> None:
        """Log the first failure of an outage, not every retry."""
        if not self._failing:
            log.warning("config change stream failed, retrying: %s", exc)
        self._failing = True

    async def _follow(self, stream: AsyncChangeStream[Document]) -> None:
        """Bump on each change until the stream ends (invalidated) or fails."""
        while stream.alive and not self._stopping:
            change = await stream.try_next()
            self._resume_token = stream.resume_token
            if change is not None:
                self.bump()
        if not stream.alive:
            self._resume_token = None  # invalidated (database dropped): start afresh
