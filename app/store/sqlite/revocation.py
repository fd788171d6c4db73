"""``apply_revocation`` as one write job: every step of a plan, or none of them."""

from __future__ import annotations

import sqlite3
from typing import Any

from app.models import (
    ByClient,
    ByClientSubject,
    ByGrant,
    ByHash,
    BySession,
    RevocationOutcome,
    RevocationPlan,
    Selector,
    TokenType,
)
from app.store.sqlite.writes import one, tenant_exists
from app.types import TenantId

NOT_APPLIED = RevocationOutcome(applied=False, count=0)

SWEEP_COVERS = """s.tenant_id = credentials.tenant_id AND s.client_id = credentials.client_id
    AND (s.sub IS NULL OR s.sub = credentials.sub)
    AND s.sweep_id > coalesce(credentials.swept, 0) AND credentials.exp > s.at"""
"""Whether the sweep scope ``s`` covers the ``credentials`` row (``app.store.sweeps``)."""

SWEPT = f"EXISTS (SELECT 1 FROM sweep_scopes s WHERE {SWEEP_COVERS})"  # noqa: S608
"""Whether a pending sweep covers the row: it is revoked, though its ``revoked_at`` is
not written yet. A lookup in an empty table but while a sweep is pending."""

# Only live credentials are taken down; one already revoked (or swept) keeps its time and
# cause, so a credential matched by two selectors, or by a sweep, is counted once.
_REVOKE = f"""UPDATE credentials SET revoked_at = :at, revoked_cause = :cause
WHERE tenant_id = :tenant AND revoked_at IS NULL AND exp > :at AND NOT {SWEPT} AND """  # noqa: S608
# A type filter: the given types padded with NULL, which matches nothing.
_TYPES = "type IN (:t0, :t1, :t2)"

REVOKE_BY_HASH = _REVOKE + "token_hash = :hash"
REVOKE_BY_GRANT = _REVOKE + "grant_id = :grant AND " + _TYPES
REVOKE_BY_CLIENT_SUBJECT = _REVOKE + "sub = :sub AND client_id = :client AND " + _TYPES
REVOKE_BY_CLIENT = _REVOKE + "client_id = :client"
REVOKE_BY_SESSION = _REVOKE + "device_session_id = :session AND " + _TYPES

INSERT_EVENT = """INSERT INTO events (tenant_id, id, time, type, cause, count, client_id, sub,
    grant_id, token_type, jti, device_session_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""


def _types(types: frozenset[TokenType]) -> dict[str, str | None]:
    values: list[str | None] = [*sorted(t.value for t in types)]
    values += [None] * (len(TokenType) - len(values))
    return {f"t{i}": v for i, v in enumerate(values)}


def selector_query(selector: Selector) -> tuple[str, dict[str, Any]]:
    match selector:
        case ByHash(token_hash):
            return REVOKE_BY_HASH, {"hash": token_hash}
        case ByGrant(grant_id, types):
            return REVOKE_BY_GRANT, {"grant": grant_id, **_types(types)}
        case ByClientSubject(client_id, sub, types):
            return REVOKE_BY_CLIENT_SUBJECT, {"client": client_id, "sub": sub, **_types(types)}
        case ByClient(client_id):
            return REVOKE_BY_CLIENT, {"client": client_id}
        case BySession(device_session_id, types):
            return REVOKE_BY_SESSION, {"session": device_session_id, **_types(types)}


def deny_is_new(conn: sqlite3.Connection, tenant_id: TenantId, plan: RevocationPlan) -> bool:
    """False when the plan's primary deny entry is there already."""
    if plan.primary_deny is None:
        return True
    row = one(
        conn,
        "SELECT 1 FROM denied WHERE tenant_id = ? AND key = ?",
        (tenant_id, plan.primary_deny.key),
    )
    return row is None


def revoke_primary(conn: sqlite3.Connection, tenant_id: TenantId, plan: RevocationPlan) -> int:
    """Take down the plan's primary credential: 0 when it is not live (already revoked,
    or gone), and the plan is then not applied."""
    if plan.primary is None:
        return 0
    params = {"tenant": tenant_id, "at": plan.revoked_at, "cause": plan.cause}
    return conn.execute(REVOKE_BY_HASH, {**params, "hash": plan.primary}).rowcount


def revoke(conn: sqlite3.Connection, tenant_id: TenantId, plan: RevocationPlan) -> int:
    count = 0
    for selector in plan.selectors:
        if isinstance(selector, ByHash) and selector.token_hash == plan.primary:
            continue  # taken down first, by revoke_primary
        sql, params = selector_query(selector)
        params.update(tenant=tenant_id, at=plan.revoked_at, cause=plan.cause)
        count += conn.execute(sql, params).rowcount
    return count


def delete_grants(conn: sqlite3.Connection, tenant_id: TenantId, plan: RevocationPlan) -> None:
    # Each executemany() prepares its statement even for no rows: skip the empty ones.
    if plan.delete_grants_of:
        conn.executemany(
            "DELETE FROM grants WHERE tenant_id = ? AND sub = ? AND client_id = ?",
            [(tenant_id, sub, client_id) for client_id, sub in plan.delete_grants_of],
        )
    if plan.delete_grant_ids:
        conn.executemany(
            "DELETE FROM grants WHERE tenant_id = ? AND grant_id = ?",
            [(tenant_id, grant_id) for grant_id in plan.delete_grant_ids],
        )


def end_sessions(conn: sqlite3.Connection, tenant_id: TenantId, plan: RevocationPlan) -> None:
    if not plan.end_sessions:
        return
    # The first end keeps its time; a later one may only make the tokens end too.
    conn.executemany(
        """INSERT INTO ended_sessions (tenant_id, device_session_id, ended_at, tokens_end)
        VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id, device_session_id)
        DO UPDATE SET tokens_end = max(tokens_end, excluded.tokens_end)""",
        [
            (tenant_id, session, plan.revoked_at, int(plan.session_tokens_end))
            for session in plan.end_sessions
        ],
    )


def set_marks(conn: sqlite3.Connection, tenant_id: TenantId, plan: RevocationPlan) -> None:
    if not plan.marks:
        return
    conn.executemany(
        """INSERT INTO not_before (tenant_id, kind, key, at) VALUES (?, ?, ?, ?)
        ON CONFLICT (tenant_id, kind, key) DO UPDATE SET at = max(at, excluded.at)""",
        [(tenant_id, mark.kind.value, mark.key, mark.at) for mark in plan.marks],
    )


def deny(conn: sqlite3.Connection, tenant_id: TenantId, plan: RevocationPlan) -> None:
    if plan.primary_deny is not None:
        entry = plan.primary_deny
        conn.execute(
            """INSERT INTO denied (tenant_id, key, exp) VALUES (?, ?, ?)
            ON CONFLICT (tenant_id, key) DO UPDATE SET exp = max(exp, excluded.exp)""",
            (tenant_id, entry.key, entry.exp),
        )


def append_events(
    conn: sqlite3.Connection, tenant_id: TenantId, plan: RevocationPlan, count: int
) -> tuple[int, ...]:
    n = len(plan.events)
    if not n:
        return ()
    last: int = one(
        conn,
        """INSERT INTO event_seq (tenant_id, last_id) VALUES (?, ?)
        ON CONFLICT (tenant_id) DO UPDATE SET last_id = last_id + excluded.last_id
        RETURNING last_id""",
        (tenant_id, n),
    )[0]
    ids = tuple(range(last - n + 1, last + 1))
    conn.executemany(
        INSERT_EVENT,
        [
            (
                tenant_id,
                event_id,
                e.time,
                e.type,
                e.cause,
                count if e.count is None else e.count,
                e.client_id,
                e.sub,
                e.grant_id,
                e.token_type,
                e.jti,
                e.device_session_id,
            )
            for event_id, e in zip(ids, plan.events, strict=True)
        ],
    )
    return ids


def apply_plan(
    conn: sqlite3.Connection, tenant_id: TenantId, plan: RevocationPlan
) -> RevocationOutcome:
    # A revocation that resolved its tenant before the tenant was deleted must not leave
    # rows for a new tenant of that id.
    if not tenant_exists(conn, tenant_id) or not deny_is_new(conn, tenant_id, plan):
        return NOT_APPLIED
    count = revoke_primary(conn, tenant_id, plan)
    if plan.primary is not None and count == 0:
        return NOT_APPLIED
    count += revoke(conn, tenant_id, plan)
    if plan.primary_deny is not None:
        count += 1  # the JWT itself, denied now (``deny_is_new`` held)
    delete_grants(conn, tenant_id, plan)
    end_sessions(conn, tenant_id, plan)
    set_marks(conn, tenant_id, plan)
    deny(conn, tenant_id, plan)
    event_ids = append_events(conn, tenant_id, plan, count)
    return RevocationOutcome(applied=True, count=count, event_ids=event_ids)
