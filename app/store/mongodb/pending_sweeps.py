"""A tenant's pending sweeps (``app.store.sweeps``), known without a query.

Every read of a credential must see what a pending sweep covers as revoked, and there
is almost never one: a query per read would double the reads' round trips for nothing.
So each instance keeps each tenant's sweeps in memory and reads them again (one indexed
query, its answer usually empty) when the configuration watcher's version for that
tenant has moved since (another tenant's change leaves it): ``SWEEPS`` is one of the
collections it follows, so another instance's sweep is known here about when the change
stream delivers its insert, and this instance's own at once (the store bumps the version
after its commit). While the change stream is down, every call queries.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from app.store.mongodb.sweeps import pending_of
from app.store.mongodb.watcher import ConfigWatcher
from app.store.sweeps import PendingSweep
from app.types import TenantId

Document = dict[str, Any]
FIELDS: Document = {"id": True, "at": True, "cause": True, "scopes": True, "_id": False}


class PendingSweeps:
    def __init__(self, collection: AsyncCollection[Document], watcher: ConfigWatcher) -> None:
        self._collection = collection
        self._watcher = watcher
        self._known: dict[TenantId, tuple[int, tuple[PendingSweep, ...]]] = {}
        """Per tenant: the watcher's version when read, and the sweeps then."""

    async def of(self, tenant_id: TenantId) -> tuple[PendingSweep, ...]:
        """The tenant's pending sweeps, oldest first (usually none)."""
        if not self._watcher.connected:
            return await self._read(tenant_id)
        version = self._watcher.tenant_version(tenant_id)
        known = self._known.get(tenant_id)
        if known is not None and known[0] == version:
            return known[1]
        # The version first, the sweeps second: a change committed in between is read
        # now, and read again when its notification moves the version.
        pending = await self._read(tenant_id)
        self._known[tenant_id] = (version, pending)
        return pending

    async def _read(self, tenant_id: TenantId) -> tuple[PendingSweep, ...]:
        found = self._collection.find({"tenant_id": tenant_id}, FIELDS)
        return tuple(sorted([pending_of(doc) async for doc in found], key=lambda s: s.id))
