"""Receivers of Security Event Tokens: the reads, and the write jobs for the group-commit
writer.

``receivers`` is configuration (its writes bump ``config_version``); ``receiver_state``
and ``delivery_log`` are written on every delivery and bump nothing. Every process's
writes are serialised by the database's write lock, so a lease taken here is exclusive
across the workers sharing the file: the conditional ``UPDATE`` of ``claim`` and
``record`` decides against whatever another process committed before.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from app.errors import Conflict
from app.models import DeliveryAttempt, Receiver, ReceiverState
from app.store.sqlite.writes import bump_config, one, require_tenant
from app.types import TenantId

Row = tuple[Any, ...]

SELECT = """SELECT tenant_id, receiver_id, config, authorization_sealed, created_at, updated_at
FROM receivers"""
GET = SELECT + " WHERE tenant_id = ? AND receiver_id = ?"
LIST_OF_TENANT = SELECT + " WHERE tenant_id = ? ORDER BY receiver_id"
LIST_ALL = SELECT + " ORDER BY tenant_id, receiver_id"

STATE_COLUMNS = """tenant_id, receiver_id, cursor, status, paused_reason, failing_since,
    attempts, next_attempt_at, last_error, delivered, lease_owner, lease_until"""
# The f-strings below join fixed column lists and conditions, never input.
GET_STATE = f"""SELECT {STATE_COLUMNS} FROM receiver_state
WHERE tenant_id = ? AND receiver_id = ?"""  # noqa: S608

LOG = """SELECT time, event_id, outcome, status, detail, duration_ms FROM delivery_log
WHERE tenant_id = ? AND receiver_id = ? ORDER BY seq DESC LIMIT ?"""

_EXISTS = """EXISTS (SELECT 1 FROM receivers
    WHERE receivers.tenant_id = receiver_state.tenant_id
    AND receivers.receiver_id = receiver_state.receiver_id)"""

CLAIM = f"""UPDATE receiver_state SET lease_owner = :owner, lease_until = :until
WHERE tenant_id = :tenant AND receiver_id = :receiver
    AND (lease_owner IS NULL OR lease_owner = :owner OR lease_until <= :now)
    AND {_EXISTS}
RETURNING {STATE_COLUMNS}"""  # noqa: S608

RECORD = f"""UPDATE receiver_state SET cursor = max(cursor, :cursor), status = :status,
    paused_reason = :paused_reason, failing_since = :failing_since, attempts = :attempts,
    next_attempt_at = :next_attempt_at, last_error = :last_error, delivered = :delivered
WHERE tenant_id = :tenant AND receiver_id = :receiver
    AND (:owner = '' OR lease_owner = :owner)
    AND {_EXISTS}"""  # noqa: S608

RESUME = """UPDATE receiver_state SET status = 'active', paused_reason = NULL,
    failing_since = NULL, attempts = 0, next_attempt_at = 0, last_error = NULL,
    lease_owner = NULL, lease_until = 0
WHERE tenant_id = ? AND receiver_id = ?"""


# --- rows ---------------------------------------------------------------------------------


def receiver_of(row: Row) -> Receiver:
    config = json.loads(row[2])
    sealed = row[3]
    return Receiver(
        tenant_id=row[0],
        receiver_id=row[1],
        delivery=config["delivery"],
        events=tuple(config["events"]),
        url=config.get("url"),
        authorization_sealed=None if sealed is None else bytes(sealed),
        client_id=config.get("client_id"),
        audience=config.get("audience"),
        created_at=row[4],
        updated_at=row[5],
    )


def config_of(receiver: Receiver) -> str:
    """The ``config`` column: everything but the ids, the sealed header and the times."""
    config: dict[str, Any] = {"delivery": receiver.delivery, "events": list(receiver.events)}
    for name in ("url", "client_id", "audience"):
        value = getattr(receiver, name)
        if value is not None:
            config[name] = value
    return json.dumps(config, separators=(",", ":"))


def state_of(row: Row) -> ReceiverState:
    return ReceiverState(*row)


def attempt_of(row: Row) -> DeliveryAttempt:
    return DeliveryAttempt(*row)


# --- write jobs ---------------------------------------------------------------------------


def put(
    conn: sqlite3.Connection,
    receiver: Receiver,
    cursor: int,
    limit: int | None,
    resume: bool,
) -> tuple[Receiver, bool]:
    tid, rid = receiver.tenant_id, receiver.receiver_id
    require_tenant(conn, tid)
    old = one(
        conn, "SELECT created_at FROM receivers WHERE tenant_id = ? AND receiver_id = ?", (tid, rid)
    )
    if old is None:
        if limit is not None:
            count = one(conn, "SELECT count(*) FROM receivers WHERE tenant_id = ?", (tid,))[0]
            if count >= limit:
                raise Conflict(f"the tenant has {count} receivers; at most {limit} are allowed")
        stored = receiver
        conn.execute(
            """INSERT INTO receivers (tenant_id, receiver_id, config, authorization_sealed,
                created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)""",
            (
                tid,
                rid,
                config_of(stored),
                stored.authorization_sealed,
                stored.created_at,
                stored.updated_at,
            ),
        )
        # A receiver deleted and created again starts afresh.
        conn.execute("DELETE FROM delivery_log WHERE tenant_id = ? AND receiver_id = ?", (tid, rid))
        conn.execute(
            f"""INSERT OR REPLACE INTO receiver_state ({STATE_COLUMNS})
            VALUES (?, ?, ?, 'active', NULL, NULL, 0, 0, NULL, 0, NULL, 0)""",  # noqa: S608
            (tid, rid, cursor),
        )
    else:
        stored = replace(receiver, created_at=old[0])
        conn.execute(
            """UPDATE receivers SET config = ?, authorization_sealed = ?, updated_at = ?
            WHERE tenant_id = ? AND receiver_id = ?""",
            (config_of(stored), stored.authorization_sealed, stored.updated_at, tid, rid),
        )
        if resume:
            conn.execute(RESUME, (tid, rid))
    bump_config(conn, tid)
    return stored, old is None


def delete(conn: sqlite3.Connection, tenant_id: TenantId, receiver_id: str) -> bool:
    key = (tenant_id, receiver_id)
    deleted: int = conn.execute(
        "DELETE FROM receivers WHERE tenant_id = ? AND receiver_id = ?", key
    ).rowcount
    conn.execute("DELETE FROM receiver_state WHERE tenant_id = ? AND receiver_id = ?", key)
    conn.execute("DELETE FROM delivery_log WHERE tenant_id = ? AND receiver_id = ?", key)
    if deleted:
        bump_config(conn, tenant_id)
    return deleted > 0


def claim(
    conn: sqlite3.Connection,
    tenant_id: TenantId,
    receiver_id: str,
    owner: str,
    now: int,
    until: int,
) -> ReceiverState | None:
    params = {
        "tenant": tenant_id,
        "receiver": receiver_id,
        "owner": owner,
        "now": now,
        "until": until,
    }
    rows = conn.execute(CLAIM, params).fetchall()
    return state_of(rows[0]) if rows else None


def record(
    conn: sqlite3.Connection,
    state: ReceiverState,
    owner: str,
    log: Sequence[DeliveryAttempt],
    keep_log: int,
) -> bool:
    tid, rid = state.tenant_id, state.receiver_id
    params = {
        "tenant": tid,
        "receiver": rid,
        "owner": owner,
        "cursor": state.cursor,
        "status": state.status,
        "paused_reason": state.paused_reason,
        "failing_since": state.failing_since,
        "attempts": state.attempts,
        "next_attempt_at": state.next_attempt_at,
        "last_error": state.last_error,
        "delivered": state.delivered,
    }
    if conn.execute(RECORD, params).rowcount != 1:
        return False
    if not log:
        return True
    last: int = one(
        conn,
        "SELECT coalesce(max(seq), 0) FROM delivery_log WHERE tenant_id = ? AND receiver_id = ?",
        (tid, rid),
    )[0]
    conn.executemany(
        """INSERT INTO delivery_log (tenant_id, receiver_id, seq, time, event_id, outcome,
            status, detail, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            (tid, rid, last + n, a.time, a.event_id, a.outcome, a.status, a.detail, a.duration_ms)
            for n, a in enumerate(log, 1)
        ],
    )
    conn.execute(
        "DELETE FROM delivery_log WHERE tenant_id = ? AND receiver_id = ? AND seq <= ?",
        (tid, rid, last + len(log) - keep_log),
    )
    return True
