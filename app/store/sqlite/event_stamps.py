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

import contextlib
import mmap
import os
import struct
import time
import zlib
from pathlib import Path

from app.types import TenantId

SLOTS = 4096
_SLOT = struct.Struct("<Q")
GENERATION = 0
"""The slot every bump moves, whatever the tenant."""


class EventStamps:
    """Without the map (a file system that cannot map it) every read answers None, and
    waiters fall back to reading the store, bounded (``EventNotifier``)."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".event-stamps")
        self._map: mmap.mmap | None = None

    def open(self) -> None:
        size = SLOTS * _SLOT.size
        with contextlib.suppress(OSError, ValueError):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size < size:
                    os.ftruncate(fd, size)  # zeros; a second process's truncate is a no-op
                self._map = mmap.mmap(fd, size)
            finally:
                os.close(fd)

    def close(self) -> None:
        stamps, self._map = self._map, None
        if stamps is not None:
            stamps.close()

    def read(self, tenant_id: TenantId) -> int | None:
        return self._read(_slot(tenant_id))

    def generation(self) -> int | None:
        return self._read(GENERATION)

    def bump(self, tenant_id: TenantId) -> None:
        """After the commit. The tenant's slot first: a waiter that sees the generation
        move then reads a tenant slot that has moved too. A new value each time
        (nanoseconds, and past the old one); a torn or concurrent write also reads as a
        change, which only wakes a waiter to read the store."""
        if self._map is None:
            return
        for offset in (_slot(tenant_id), GENERATION):
            old: int = _SLOT.unpack_from(self._map, offset)[0]
            _SLOT.pack_into(self._map, offset, max(time.time_ns(), old + 1) % 2**64)

    def _read(self, offset: int) -> int | None:
        if self._map is None:
            return None
        value: int = _SLOT.unpack_from(self._map, offset)[0]
        return value


def _slot(tenant_id: TenantId) -> int:
    return (1 + zlib.crc32(tenant_id.encode()) % (SLOTS - 1)) * _SLOT.size
