"""``config_version()`` for MongoDB: an in-memory counter that other instances' writes move.

A background task follows one change stream on the database, filtered to the
configuration collections (``CONFIG_COLLECTIONS``: tenants, issuers, clients, admin keys,
plugins), and bumps the counter on every change. It keeps the resume token and, after an
error, reopens the stream from it (or from now, when the server no longer has that
history), bumping once more since something may have been missed. As a last resort the
version also moves every ``refresh_interval_s``, so a notification lost any other way
heals by itself.

Each step of the counter is logged with the tenant the change concerned
(``config_changes_since``), so caches reload that tenant only. Inserts and replacements
carry the document; updates and deletes carry its pre-image, which the configuration
collections keep (``schema.ensure_schema``). A step without a tenant (a reopened or lost
stream, a refresh period, a change whose image is not available) is logged as unknown,
which makes readers reload everything.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from app.store.mongodb.change_stream import ChangeStreamFollower
from app.store.mongodb.schema import CONFIG_COLLECTIONS
from app.types import TenantId

Document = dict[str, Any]

log = logging.getLogger(__name__)

PIPELINE: list[Document] = [
    {"$match": {"ns.coll": {"$in": list(CONFIG_COLLECTIONS)}}},
    # Only the tenant is read: the images are not shipped whole (the resume token, the
    # event's ``_id``, must stay as it is).
    {
        "$project": {
            "operationType": 1,
            "fullDocument.tenant_id": 1,
            "fullDocumentBeforeChange.tenant_id": 1,
        }
    },
]
WATCH_OPTIONS: Document = {"full_document_before_change": "whenAvailable"}
LOG_SIZE = 10_000
"""Steps kept; a cache further behind than that reloads everything."""


def tenant_of(change: Document) -> TenantId | None:
    """The tenant a change concerned, from the document or its pre-image."""
    for image in ("fullDocument", "fullDocumentBeforeChange"):
        found = (change.get(image) or {}).get("tenant_id")
        if isinstance(found, str):
            return TenantId(found)
    return None


class ConfigWatcher:
    def __init__(self, db: AsyncDatabase[Document], refresh_interval_s: float) -> None:
        self._refresh_interval_s = refresh_interval_s
        self._changes = 0
        self._periods = 0
        self._log: deque[tuple[int, TenantId | None]] = deque(maxlen=LOG_SIZE)
        self._unknown_at = 0
        self._tenant_at: dict[TenantId, int] = {}
        """The step of each tenant's latest change (``tenant_version``)."""
        self._started = time.monotonic()
        # Every (re)opened or lost stream bumps too: changes may have passed unseen.
        self._stream = ChangeStreamFollower(
            "config",
            db,
            PIPELINE,
            lambda change: self.bump(tenant_of(change)),
            log,
            resume=True,
            on_open=self.bump,
            on_lost=self.bump,
            watch_options=WATCH_OPTIONS,
        )

    @property
    def connected(self) -> bool:
        """True while the change stream is open (False during an outage)."""
        return self._stream.connected

    def version(self) -> int:
        """The steps taken: one per change seen, and one per refresh period elapsed
        (taken when first asked for), so it moves whenever either happens."""
        periods = int((time.monotonic() - self._started) / self._refresh_interval_s)
        if periods != self._periods:
            self._periods = periods
            self.bump()
        return self._changes

    def bump(self, tenant_id: TenantId | None = None) -> None:
        """One step, for a change to ``tenant_id``'s configuration (None: unknown)."""
        self._changes += 1
        self._log.append((self._changes, tenant_id))
        if tenant_id is None:
            self._unknown_at = self._changes
        else:
            self._tenant_at[tenant_id] = self._changes

    def tenant_version(self, tenant_id: TenantId) -> int:
        """A version that moves with a change to ``tenant_id``'s configuration or an
        unknown change, and not with another tenant's."""
        self.version()  # takes the step of a refresh period that elapsed
        return max(self._unknown_at, self._tenant_at.get(tenant_id, 0))

    def changes_since(self, version: int) -> tuple[int, frozenset[TenantId]] | None:
        """The current version and the tenants changed after ``version``; None when a
        step since is unknown or no longer logged."""
        current = self.version()
        if version > current:
            return None
        if version == current:
            return current, frozenset()
        if not self._log or self._log[0][0] > version + 1:
            return None
        tenants: set[TenantId] = set()
        # Newest first: the steps after ``version`` are the last ``current - version``.
        for index in range(len(self._log) - 1, len(self._log) - 1 - (current - version), -1):
            tenant = self._log[index][1]
            if tenant is None:
                return None
            tenants.add(tenant)
        return current, frozenset(tenants)

    async def start(self) -> None:
        """Open the stream now, so that no change after ``open()`` returns is missed."""
        await self._stream.start()

    async def stop(self) -> None:
        await self._stream.stop()
