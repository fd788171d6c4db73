"""Which tenant each configuration change concerned: ``config_changes``, one row per
``config_version`` step, so a process's caches can reload the tenants that changed
instead of all of them (``Store.config_changes_since``).

Every step of the version is logged in the transaction that takes it, so the rows after
a version are complete or, when pruned or from before the log existed, visibly missing:
the reader counts them and answers None (reload everything) when any is.
"""

from __future__ import annotations

import sqlite3

from app.types import TenantId

KEPT = 10_000
"""Changes kept; a process further behind than that reloads everything."""
PRUNE_EVERY = 1_000
"""The log is pruned once per this many changes, not on every write."""

RECORD = "INSERT INTO config_changes (version, tenant_id) VALUES (?, ?)"
BUMP = "UPDATE config_version SET version = version + 1 WHERE id = 1 RETURNING version"

# One statement, so the version and the rows after it are one snapshot. The LEFT JOIN
# gives one row (tenant NULL, count 0) when nothing changed since.
SINCE = """SELECT v.version, c.tenant_id, count(c.version)
FROM config_version v LEFT JOIN config_changes c ON c.version > ?
WHERE v.id = 1 GROUP BY c.tenant_id"""


def record(conn: sqlite3.Connection, tenant_id: TenantId) -> None:
    """Move ``config_version`` and log the change as ``tenant_id``'s."""
    version: int = conn.execute(BUMP).fetchall()[0][0]
    conn.execute(RECORD, (version, tenant_id))
    if version % PRUNE_EVERY == 0:
        conn.execute("DELETE FROM config_changes WHERE version <= ?", (version - KEPT,))


def since(conn: sqlite3.Connection, version: int) -> tuple[int, frozenset[TenantId]] | None:
    """The current version and the tenants changed after ``version``; None when the log
    does not hold every change since (pruned, older than the log, or a restored
    database whose version is behind ``version``)."""
    rows = conn.execute(SINCE, (version,)).fetchall()
    current: int = rows[0][0]
    logged = sum(count for _, _, count in rows)
    if current < version or logged != current - version:
        return None
    tenants = frozenset(tenant for _, tenant, count in rows if count)
    if None in tenants:
        return None
    return current, tenants
