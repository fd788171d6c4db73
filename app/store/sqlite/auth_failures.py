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

import sqlite3
import zlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from app.store.sqlite.shared_stamps import SLOTS, SharedStamps
from app.types import TenantId

RECORD = """INSERT INTO auth_failures (tenant_id, key, window_start, count, exp)
VALUES (?, ?, ?, 1, ?)
ON CONFLICT (tenant_id, key, window_start) DO UPDATE SET count = count + 1"""


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
        self._stamps = SharedStamps(database, ".auth-failures")

    def open(self) -> None:
        self._stamps.open()

    def close(self) -> None:
        self._stamps.close()

    def read(self, tenant_id: TenantId, key: str) -> int | None:
        return self._stamps.read(_slot(tenant_id, key))

    def bump(self, tenant_id: TenantId, keys: Sequence[str]) -> None:
        """After the commit: a reader that then reads the count sees the failure, and one
        that read before sees the slot change."""
        self._stamps.bump(_slot(tenant_id, key) for key in keys)


def _slot(tenant_id: TenantId, key: str) -> int:
    """Keys sharing a slot only cost each other a read."""
    return zlib.crc32(f"{tenant_id}\n{key}".encode()) % SLOTS
