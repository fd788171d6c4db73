"""Failed client authentications (contract section 7): counts per key and fixed window.

A failure is one ``INSERT … ON CONFLICT DO UPDATE`` per key in the writer's transaction:
the increment happens in SQLite under the file's write lock, so failures counted by two
workers at once both count. The check is one read of every key at once.

``FailureStamps`` lets a check skip that read: a small shared-memory file next to the
database, a slot per hash of (tenant, key), to which every process writes after it has
committed a failure of that key. A process that read a count of 0 may answer 0 again
for as long as the key's slot holds the value it held before that read.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import sqlite3
import struct
import time
import zlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from app.types import TenantId

RECORD = """INSERT INTO auth_failures (tenant_id, key, window_start, count, exp)
VALUES (?, ?, ?, 1, ?)
ON CONFLICT (tenant_id, key, window_start) DO UPDATE SET count = count + 1"""

SLOTS = 4096
"""Slots of the stamp file: keys sharing one only cost each other a read."""
_SLOT = struct.Struct("<Q")


@cache
def counts_query(keys: int) -> str:
    """The counts of ``keys`` keys in one window: primary-key lookups. Placeholders only:
    the values are bound, never formatted in."""
    marks = ", ".join("?" * keys)
    return (
        "SELECT key, count FROM auth_failures"  # noqa: S608
        f" WHERE tenant_id = ? AND window_start = ? AND key IN ({marks})"
    )


def record(
    conn: sqlite3.Connection,
    tenant_id: TenantId,
    keys: Sequence[str],
    window_start: int,
    window_end: int,
) -> None:
    conn.executemany(RECORD, [(tenant_id, key, window_start, window_end) for key in keys])


class FailureStamps:
    """``<database>.auth-failures``, mapped shared into every process that opens the store
    (every worker runs on the machine that holds the file). Without it (a file system
    that cannot map it), ``read`` answers None and every check reads the counts."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".auth-failures")
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

    def read(self, tenant_id: TenantId, key: str) -> int | None:
        if self._map is None:
            return None
        value: int = _SLOT.unpack_from(self._map, _slot(tenant_id, key))[0]
        return value

    def bump(self, tenant_id: TenantId, keys: Sequence[str]) -> None:
        """After the commit: a reader that then reads the count sees the failure, and one
        that read before sees the slot change. A new value each time (nanoseconds, and
        past the old one); a torn or concurrent write also reads as a change."""
        if self._map is None:
            return
        for key in keys:
            offset = _slot(tenant_id, key)
            old: int = _SLOT.unpack_from(self._map, offset)[0]
            _SLOT.pack_into(self._map, offset, max(time.time_ns(), old + 1) % 2**64)


def _slot(tenant_id: TenantId, key: str) -> int:
    return zlib.crc32(f"{tenant_id}\n{key}".encode()) % SLOTS * _SLOT.size
