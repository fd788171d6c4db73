"""Retention purges as write jobs: one tenant's oldest events, not-before marks and
ended sessions, at most ``limit`` rows a job (``Store.purge_events`` and the like).

Each subquery walks one of the retention migration's indexes (``events_time``,
``not_before_at``, ``ended_sessions_at``) from the tenant's oldest row, so a job reads
about the rows it drops, never the tenant's whole table. A job that drops marks or
ended sessions advances the tenant's retention horizon in its transaction
(``horizon``).
"""

from __future__ import annotations

import sqlite3

from app.store.sqlite import horizon
from app.types import TenantId

PURGE_EVENTS = """DELETE FROM events WHERE tenant_id = :tenant AND id IN (
    SELECT id FROM events WHERE tenant_id = :tenant AND time < :before
    ORDER BY time LIMIT :limit)"""

PURGE_MARKS = """DELETE FROM not_before WHERE tenant_id = :tenant AND (kind, key) IN (
    SELECT kind, key FROM not_before WHERE tenant_id = :tenant AND at < :before
    ORDER BY at LIMIT :limit)"""

# A session is kept while a stored credential of it is live: ``is_active`` would take
# that credential for active once the session's end is forgotten.
PURGE_ENDED_SESSIONS = """DELETE FROM ended_sessions
WHERE tenant_id = :tenant AND device_session_id IN (
    SELECT s.device_session_id FROM ended_sessions AS s
    WHERE s.tenant_id = :tenant AND s.ended_at < :before AND NOT EXISTS (
        SELECT 1 FROM credentials AS c
        WHERE c.tenant_id = :tenant AND c.device_session_id = s.device_session_id
            AND c.revoked_at IS NULL AND c.exp > :now)
    ORDER BY s.ended_at LIMIT :limit)"""


def purge_events(conn: sqlite3.Connection, tenant_id: TenantId, before: int, limit: int) -> int:
    params = {"tenant": tenant_id, "before": before, "limit": limit}
    dropped: int = conn.execute(PURGE_EVENTS, params).rowcount
    return dropped


def purge_marks(conn: sqlite3.Connection, tenant_id: TenantId, before: int, limit: int) -> int:
    params = {"tenant": tenant_id, "before": before, "limit": limit}
    dropped: int = conn.execute(PURGE_MARKS, params).rowcount
    if dropped:
        horizon.advance(conn, tenant_id, before)
    return dropped


def purge_ended_sessions(
    conn: sqlite3.Connection, tenant_id: TenantId, before: int, now: int, limit: int
) -> int:
    params = {"tenant": tenant_id, "before": before, "now": now, "limit": limit}
    dropped: int = conn.execute(PURGE_ENDED_SESSIONS, params).rowcount
    if dropped:
        horizon.advance(conn, tenant_id, before)
    return dropped
