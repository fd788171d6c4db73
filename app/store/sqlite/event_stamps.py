"""``events_stamp`` and ``events_generation`` on SQLite: shared memory next to the database.

Readers of the events feed wait for new events (long-poll, Server-Sent Events); asking
SQLite every few milliseconds whether there are any would cost a read per waiter per
tick. Instead every process that commits a write which appended events moves two slots
of ``<database>.event-stamps``, a small file mapped shared into every process that opens
the store (every worker runs on the machine that holds the file): the tenant's slot (a
hash of the tenant id; tenants sharing a slot only cost each other a spurious wake-up),
then slot 0, the generation, so one read tells a waiter whether any tenant moved.

A process that dies between its commit and the stamp leaves its events unannounced
until the next event of that tenant; readers bound their waits, so they are read then.
"""

from __future__ import annotations

import zlib
from functools import lru_cache
from pathlib import Path

from app.store.sqlite.shared_stamps import SLOTS, SharedStamps
from app.types import TenantId

GENERATION = 0
"""The slot every bump moves, whatever the tenant."""


class EventStamps:
    """Without the map (a file system that cannot map it) every read answers None, and
    waiters fall back to reading the store, bounded (``EventNotifier``)."""

    def __init__(self, database: Path) -> None:
        self._stamps = SharedStamps(database, ".event-stamps")

    def open(self) -> None:
        self._stamps.open()

    def close(self) -> None:
        self._stamps.close()

    def read(self, tenant_id: TenantId) -> int | None:
        return self._stamps.read(_slot(tenant_id))

    def generation(self) -> int | None:
        return self._stamps.read(GENERATION)

    def bump(self, tenant_id: TenantId) -> None:
        """After the commit. The tenant's slot first: a waiter that sees the generation
        move then reads a tenant slot that has moved too."""
        self._stamps.bump((_slot(tenant_id), GENERATION))


@lru_cache(maxsize=1024)  # a bump is on every revocation's path: no hashing each time
def _slot(tenant_id: TenantId) -> int:
    return 1 + zlib.crc32(tenant_id.encode()) % (SLOTS - 1)
