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

import logging
import time
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from app.store.mongodb.change_stream import ChangeStreamFollower
from app.store.mongodb.schema import CONFIG_COLLECTIONS

Document = dict[str, Any]

log = logging.getLogger(__name__)

PIPELINE: list[Document] = [{"$match": {"ns.coll": {"$in": list(CONFIG_COLLECTIONS)}}}]


class ConfigWatcher:
    def __init__(self, db: AsyncDatabase[Document], refresh_interval_s: float) -> None:
        self._refresh_interval_s = refresh_interval_s
        self._changes = 0
        self._started = time.monotonic()
        # Every (re)opened or lost stream bumps too: changes may have passed unseen.
        self._stream = ChangeStreamFollower(
            "config",
            db,
            PIPELINE,
            lambda _change: self.bump(),
            log,
            resume=True,
            on_open=self.bump,
            on_lost=self.bump,
        )

    @property
    def connected(self) -> bool:
        """True while the change stream is open (False during an outage)."""
        return self._stream.connected

    def version(self) -> int:
        """Changes seen plus refresh periods elapsed: both only grow, so their sum moves
        whenever either does."""
        periods = int((time.monotonic() - self._started) / self._refresh_interval_s)
        return self._changes + periods

    def bump(self) -> None:
        self._changes += 1

    async def start(self) -> None:
        """Open the stream now, so that no change after ``open()`` returns is missed."""
        await self._stream.start()

    async def stop(self) -> None:
        await self._stream.stop()
