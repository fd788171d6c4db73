"""Sweeps on SQLite (``app.store.sweeps``): write jobs that start a sweep and advance it
a chunk at a time, and the read that sees what a pending sweep covers.

A scope's credentials are swept in ``rowid`` order through the index that serves its
selector (``credentials_client``, or ``credentials_subject`` for one subject), which
holds each key's rows in ``rowid`` order: each chunk starts where the last one stopped
(``after_rowid``), so a million credentials cost one pass, not one per chunk.
"""

from __future__ import annotations

import sqlite3

from app.models import RevocationOutcome, RevocationPlan
from app.store.sqlite.revocation import NOT_APPLIED, SWEEP_COVERS, append_events, apply_plan
from app.store.sqlite.writes import one
from app.store.sweeps import dump_events, load_events
from app.types import TenantId

FINISHED_ELSEWHERE = RevocationOutcome(applied=True, count=0)
"""A sweep another process finished (housekeeping, after this one stalled): its events,
with its count, are that process's to append."""

FIND_CREDENTIAL = f"""SELECT credentials.tenant_id, token_hash, type, credentials.client_id, exp,
    credentials.sub, grant_id, device_session_id, scope, iat, revoked_at, revoked_cause,
    status_idx, s.at, s.cause
FROM credentials LEFT JOIN sweep_scopes s ON revoked_at IS NULL AND {SWEEP_COVERS}
WHERE credentials.tenant_id = ? AND token_hash = ? LIMIT 1"""  # noqa: S608
"""A credential, with the time and cause of a pending sweep that covers it (else NULL)."""

_SCOPE = {
    False: "tenant_id = :tenant AND client_id = :client",
    True: "tenant_id = :tenant AND sub = :sub AND client_id = :client",
}
"""The rows of a scope, by the keys of the index that serves it (with a subject or not)."""

CHUNK_END = {
    has_sub: f"""SELECT max(rowid), count(*) FROM (SELECT rowid FROM credentials
        WHERE {scope} AND rowid > :after ORDER BY rowid LIMIT :limit)"""  # noqa: S608
    for has_sub, scope in _SCOPE.items()
}
"""The last rowid of a scope's next chunk, and how many rows the chunk has."""

SWEEP_CHUNK = {
    has_sub: f"""UPDATE credentials SET revoked_at = :at, revoked_cause = :cause
        WHERE {scope} AND rowid > :after AND rowid <= :last AND revoked_at IS NULL
        AND exp > :at AND coalesce(swept, 0) < :sweep"""  # noqa: S608
    for has_sub, scope in _SCOPE.items()
}
"""Revoke what the sweep covers in one chunk: live, and registered before the sweep."""


def start(
    conn: sqlite3.Connection, tenant_id: TenantId, plan: RevocationPlan, now: int, limit: int
) -> tuple[int | None, RevocationOutcome | None]:
    """Commit ``plan`` less its sweeping selectors, and a sweep of those; then ``step``.
    The sweep's id, and the outcome once it is done; ``NOT_APPLIED`` when the plan does
    not apply (its tenant is gone, its primary is not live)."""
    rest = apply_plan(conn, tenant_id, plan.without_sweeps())
    if not rest.applied:
        return None, NOT_APPLIED
    sweep_id: int = one(
        conn,
        """INSERT INTO sweeps (tenant_id, at, cause, count, events, touched_at)
        VALUES (?, ?, ?, ?, ?, ?) RETURNING id""",
        (tenant_id, plan.revoked_at, plan.cause, rest.count, dump_events(plan.events), now),
    )[0]
    conn.executemany(
        """INSERT INTO sweep_scopes (tenant_id, client_id, sub, sweep_id, at, cause, after_rowid)
        VALUES (?, ?, ?, ?, ?, ?, 0)""",
        [
            (tenant_id, scope.client_id, scope.sub, sweep_id, plan.revoked_at, plan.cause)
            for scope in plan.sweeps
        ],
    )
    return sweep_id, step(conn, sweep_id, now, limit)


def step(conn: sqlite3.Connection, sweep_id: int, now: int, limit: int) -> RevocationOutcome | None:
    """Sweep the next ``limit`` credentials (rows looked at) of the sweep's scopes: None
    while some are left. Once none is: append the sweep's events, counting everything
    it took down, remove it, and return the outcome."""
    sweep = one(
        conn, "SELECT tenant_id, at, cause, count, events FROM sweeps WHERE id = ?", [sweep_id]
    )
    if sweep is None:
        return FINISHED_ELSEWHERE
    tenant_id, at, cause, count, events = sweep
    scopes = conn.execute(
        "SELECT rowid, client_id, sub, after_rowid FROM sweep_scopes WHERE sweep_id = ?"
        " ORDER BY rowid",
        [sweep_id],
    ).fetchall()
    budget = limit
    for scope_rowid, client_id, sub, after in scopes:
        has_sub = sub is not None
        params = {"tenant": tenant_id, "client": client_id, "sub": sub, "after": after}
        last, seen = conn.execute(CHUNK_END[has_sub], {**params, "limit": budget}).fetchall()[0]
        if seen:
            params.update(last=last, at=at, cause=cause, sweep=sweep_id)
            count += conn.execute(SWEEP_CHUNK[has_sub], params).rowcount
        if seen == budget:  # maybe more: go on from here next time
            conn.execute(
                "UPDATE sweep_scopes SET after_rowid = ? WHERE rowid = ?", (last, scope_rowid)
            )
            conn.execute(
                "UPDATE sweeps SET count = ?, touched_at = ? WHERE id = ?", (count, now, sweep_id)
            )
            return None
        conn.execute("DELETE FROM sweep_scopes WHERE rowid = ?", (scope_rowid,))
        budget -= seen
    conn.execute("DELETE FROM sweeps WHERE id = ?", (sweep_id,))
    drafts = RevocationPlan(revoked_at=at, cause=cause, events=tuple(load_events(events)))
    event_ids = append_events(conn, tenant_id, drafts, count)
    return RevocationOutcome(applied=True, count=count, event_ids=event_ids)


IDLE = "SELECT id, tenant_id FROM sweeps WHERE touched_at <= ? ORDER BY id"
"""Sweeps that no process has advanced since then, oldest first."""
