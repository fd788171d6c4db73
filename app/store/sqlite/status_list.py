"""Token Status List indexes on SQLite: handing them out (a write job for the
group-commit writer) and the reads that build a list (``app.propagation.status_list``).

``status_seq`` holds the last index handed out per tenant; the partial index
``credentials_status`` holds only revoked credentials that have an index, so a list is
built from its set bits alone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from app.store.sqlite.revocation import SWEEP_COVERS
from app.store.sqlite.writes import one, require_tenant
from app.types import TenantId, TokenHash

ALLOCATE = """INSERT INTO status_seq (tenant_id, last_idx) VALUES (?1, ?2 - 1)
ON CONFLICT (tenant_id) DO UPDATE SET last_idx = last_idx + ?2
RETURNING last_idx"""

ALLOCATED = "SELECT last_idx + 1 FROM status_seq WHERE tenant_id = ?"

REVOKED = """SELECT status_idx FROM credentials
WHERE tenant_id = :tenant AND status_idx >= :low AND status_idx < :high
AND revoked_at IS NOT NULL ORDER BY status_idx"""
"""Served by ``credentials_status`` alone: its condition is implied by these terms."""

PENDING_SWEEPS = "SELECT 1 FROM sweep_scopes WHERE tenant_id = ? LIMIT 1"

SWEPT = f"""SELECT DISTINCT credentials.status_idx FROM sweep_scopes s
JOIN credentials ON {SWEEP_COVERS}
WHERE s.tenant_id = :tenant AND credentials.revoked_at IS NULL
AND credentials.status_idx >= :low AND credentials.status_idx < :high"""  # noqa: S608
"""Live rows a pending sweep covers (``app.store.sweeps``): revoked, though not yet
written so. Read only while the tenant has a sweep pending."""

STORED_CHUNK = 500
"""Hashes per ``IN`` list of ``stored`` (SQLite allows 32,766 parameters)."""


def allocate(conn: sqlite3.Connection, tenant_id: TenantId, count: int) -> int:
    """Reserve ``count`` indexes: the first. One statement, inside the writer's
    transaction, so two processes never get the same index."""
    if count < 1:
        raise ValueError("count must be at least 1")
    require_tenant(conn, tenant_id)
    last: int = one(conn, ALLOCATE, (tenant_id, count))[0]
    return last - count + 1


def allocated(conn: sqlite3.Connection, tenant_id: TenantId) -> int:
    row = one(conn, ALLOCATED, (tenant_id,))
    return 0 if row is None else int(row[0])


def revoked(conn: sqlite3.Connection, tenant_id: TenantId, low: int, high: int) -> list[int]:
    params = {"tenant": tenant_id, "low": low, "high": high}
    found = [row[0] for row in conn.execute(REVOKED, params).fetchall()]
    if one(conn, PENDING_SWEEPS, (tenant_id,)) is None:
        return found
    swept = {row[0] for row in conn.execute(SWEPT, params).fetchall()}
    return sorted(swept.union(found))


def stored(
    conn: sqlite3.Connection, tenant_id: TenantId, token_hashes: Sequence[TokenHash]
) -> dict[TokenHash, int]:
    out: dict[TokenHash, int] = {}
    for start in range(0, len(token_hashes), STORED_CHUNK):
        chunk = token_hashes[start : start + STORED_CHUNK]
        rows = conn.execute(
            "SELECT token_hash, status_idx FROM credentials WHERE tenant_id = ?"  # noqa: S608
            f" AND token_hash IN ({', '.join('?' * len(chunk))}) AND status_idx IS NOT NULL",
            (tenant_id, *chunk),
        ).fetchall()
        out.update((bytes(h), int(i)) for h, i in rows)
    return out
