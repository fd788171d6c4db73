"""Write jobs for the group-commit writer: functions of its connection, each run inside
the batch's transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from app.errors import Conflict, NotFound
from app.models import AdminKey, Client, Credential, Grant, RegistrationOutcome, Tenant
from app.store.base import DELETION_PENDING
from app.store.late_registration import MarkKey, as_registered, wanted_marks
from app.store.sqlite import config_changes, horizon
from app.store.sqlite.rows import client_row, credential_of, credential_row, grant_row, tenant_row
from app.store.sqlite.schema import CONFIG_TABLES, DATA_TABLES, TENANT_TABLES
from app.types import ClientId, TenantId, TokenHash


def one(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Any:
    """The first row or None (fetchall: no statement is left running)."""
    rows = conn.execute(sql, params).fetchall()
    return rows[0] if rows else None


def bump_config(conn: sqlite3.Connection, tenant_id: TenantId) -> None:
    """Move ``config_version`` for a change to ``tenant_id``'s configuration."""
    config_changes.record(conn, tenant_id)


# --- tenants ------------------------------------------------------------------------------


def put_tenant(conn: sqlite3.Connection, tenant: Tenant, issuers: Sequence[str]) -> Tenant:
    tid = tenant.tenant_id
    put_tenant_allowed(conn, tid)
    old = one(conn, "SELECT key_salt, created_at FROM tenants WHERE tenant_id = ?", (tid,))
    if old is None:
        stored = tenant
        conn.execute(
            "INSERT INTO tenants (tenant_id, settings, key_salt, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?)",
            tenant_row(stored),
        )
    else:
        stored = replace(tenant, key_salt=bytes(old[0]), created_at=old[1])
        conn.execute(
            "UPDATE tenants SET settings = ?, updated_at = ? WHERE tenant_id = ?",
            (tenant_row(stored)[1], stored.updated_at, tid),
        )
    conn.execute("DELETE FROM issuers WHERE tenant_id = ?", (tid,))
    for issuer in dict.fromkeys(issuers):
        try:
            conn.execute("INSERT INTO issuers (issuer, tenant_id) VALUES (?, ?)", (issuer, tid))
        except sqlite3.IntegrityError:
            raise Conflict(f"issuer {issuer} belongs to another tenant") from None
    bump_config(conn, tid)
    return stored


def tenant_exists(conn: sqlite3.Connection, tenant_id: TenantId) -> bool:
    return one(conn, "SELECT 1 FROM tenants WHERE tenant_id = ?", (tenant_id,)) is not None


def deletion_pending(conn: sqlite3.Connection, tenant_id: TenantId) -> bool:
    return one(conn, "SELECT 1 FROM deleted_tenants WHERE tenant_id = ?", (tenant_id,)) is not None


def put_tenant_allowed(conn: sqlite3.Connection, tenant_id: TenantId) -> None:
    if deletion_pending(conn, tenant_id):
        raise Conflict(DELETION_PENDING)


def delete_tenant(conn: sqlite3.Connection, tenant_id: TenantId, at: int) -> bool:
    """Delete the tenant's configuration, and mark its data for deletion in chunks."""
    existed = False
    for table in TENANT_TABLES:
        if table not in CONFIG_TABLES:
            continue
        # Table names come from the fixed tuple above, never from input.
        deleted = conn.execute(
            f"DELETE FROM {table} WHERE tenant_id = ?",  # noqa: S608
            (tenant_id,),
        ).rowcount
        existed |= table == "tenants" and deleted > 0
    if existed:
        conn.execute(
            "INSERT OR IGNORE INTO deleted_tenants (tenant_id, deleted_at) VALUES (?, ?)",
            (tenant_id, at),
        )
        bump_config(conn, tenant_id)
    return existed


def delete_tenant_data(conn: sqlite3.Connection, tenant_id: TenantId, limit: int) -> int | None:
    """Delete up to ``limit`` rows of a deleted tenant's data: how many, 0 when the data
    is gone (the tenant id is then free again), None when the tenant is not marked
    deleted (finished by someone else, so rows under its id are a new tenant's)."""
    if not deletion_pending(conn, tenant_id):
        return None
    for table, key in DATA_TABLES.items():
        # Table and column names come from the fixed mapping, never from input.
        deleted: int = conn.execute(
            f"DELETE FROM {table} WHERE tenant_id = ? AND ({key}) IN"  # noqa: S608
            f" (SELECT {key} FROM {table} WHERE tenant_id = ? LIMIT ?)",
            (tenant_id, tenant_id, limit),
        ).rowcount
        if deleted:
            return deleted
    conn.execute("DELETE FROM deleted_tenants WHERE tenant_id = ?", (tenant_id,))
    return 0


# --- admin keys and clients -----------------------------------------------------------


def add_admin_key(conn: sqlite3.Connection, key: AdminKey) -> None:
    try:
        conn.execute(
            "INSERT INTO admin_keys (tenant_id, key_id, key_hash, created_at) VALUES (?, ?, ?, ?)",
            (key.tenant_id, key.key_id, key.key_hash, key.created_at),
        )
    except sqlite3.IntegrityError:
        raise Conflict("an admin key with this key_id exists") from None
    bump_config(conn, key.tenant_id)


def delete_admin_key(conn: sqlite3.Connection, tenant_id: TenantId, key_id: str) -> bool:
    deleted = conn.execute(
        "DELETE FROM admin_keys WHERE tenant_id = ? AND key_id = ?", (tenant_id, key_id)
    ).rowcount
    if deleted:
        bump_config(conn, tenant_id)
    return deleted > 0


def put_client(conn: sqlite3.Connection, client: Client) -> None:
    conn.execute(
        """INSERT INTO clients (tenant_id, client_id, type, token_endpoint_auth_method, scope,
            enabled, secret_hash, secret_encrypted, jwks, jwks_uri, created_at, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (tenant_id, client_id) DO UPDATE SET
            type = excluded.type,
            token_endpoint_auth_method = excluded.token_endpoint_auth_method,
            scope = excluded.scope,
            enabled = excluded.enabled,
            secret_hash = excluded.secret_hash,
            secret_encrypted = excluded.secret_encrypted,
            jwks = excluded.jwks,
            jwks_uri = excluded.jwks_uri,
            updated_at = excluded.updated_at""",
        client_row(client),
    )
    bump_config(conn, client.tenant_id)


def delete_client(conn: sqlite3.Connection, tenant_id: TenantId, client_id: ClientId) -> bool:
    deleted = conn.execute(
        "DELETE FROM clients WHERE tenant_id = ? AND client_id = ?", (tenant_id, client_id)
    ).rowcount
    if deleted:
        bump_config(conn, tenant_id)
    return deleted > 0


# --- credentials and grants -------------------------------------------------------------

INSERT_CREDENTIAL = """INSERT INTO credentials (tenant_id, token_hash, type, client_id, exp,
    sub, grant_id, device_session_id, scope, iat, revoked_at, revoked_cause, status_idx, swept)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant_id, token_hash) DO NOTHING"""
"""The last value is the credential's sweep stamp (``app.store.sweeps``)."""

FIND_CREDENTIAL = """SELECT tenant_id, token_hash, type, client_id, exp, sub, grant_id,
    device_session_id, scope, iat, revoked_at, revoked_cause, status_idx
FROM credentials WHERE tenant_id = ? AND token_hash = ?"""


def require_tenant(conn: sqlite3.Connection, tenant_id: TenantId) -> None:
    """Data is written only for a tenant that exists, checked in the writing transaction:
    a request that resolved its tenant before a deletion must not leave rows behind
    that a new tenant of the same id would inherit."""
    if not tenant_exists(conn, tenant_id):
        raise NotFound("unknown tenant")


def register_credentials(
    conn: sqlite3.Connection, tenant_id: TenantId, credentials: Sequence[Credential], now: int
) -> RegistrationOutcome:
    require_tenant(conn, tenant_id)
    # Descriptions name the position in the batch, never the token or its hash.
    first: dict[TokenHash, tuple[int, Credential]] = {}
    for index, credential in enumerate(credentials):
        seen = first.setdefault(credential.token_hash, (index, credential))[1]
        if not seen.same_issue(credential):
            raise Conflict(f"credential {index} repeats an earlier one with other fields")
    stamp = latest_sweep(conn, tenant_id)
    batch = as_registered(
        [c for _, c in first.values()],
        marks_of(conn, tenant_id, first),
        horizon.read(conn, tenant_id),
        now,
    )
    inserted: int = conn.executemany(
        INSERT_CREDENTIAL, ((*credential_row(tenant_id, c), stamp) for c in batch)
    ).rowcount
    if inserted < len(first):
        # Some were stored before (ON CONFLICT DO NOTHING left them, revoked or not).
        for index, credential in first.values():
            stored = credential_of(one(conn, FIND_CREDENTIAL, (tenant_id, credential.token_hash)))
            if not stored.same_issue(credential):
                raise Conflict(f"credential {index} is already registered with other fields")
    return RegistrationOutcome(registered=inserted, duplicates=len(credentials) - inserted)


MARKS_PER_QUERY = 500
"""Keys per ``IN`` list of ``marks_of`` (SQLite allows 32,766 parameters)."""


def marks_of(
    conn: sqlite3.Connection, tenant_id: TenantId, batch: Mapping[TokenHash, tuple[int, Credential]]
) -> dict[MarkKey, int]:
    """The set marks among the batch's ``wanted_marks``: primary-key lookups."""
    found: dict[MarkKey, int] = {}
    for kind, keys in wanted_marks([c for _, c in batch.values()]).items():
        for start in range(0, len(keys), MARKS_PER_QUERY):
            chunk = keys[start : start + MARKS_PER_QUERY]
            rows = conn.execute(
                "SELECT key, at FROM not_before WHERE tenant_id = ? AND kind = ?"  # noqa: S608
                f" AND key IN ({', '.join('?' * len(chunk))})",
                (tenant_id, kind.value, *chunk),
            )
            found.update(((kind, key), at) for key, at in rows.fetchall())
    return found


def latest_sweep(conn: sqlite3.Connection, tenant_id: TenantId) -> int | None:
    """The stamp of a credential registered now: the tenant's latest pending sweep."""
    latest: int | None = one(conn, "SELECT max(id) FROM sweeps WHERE tenant_id = ?", [tenant_id])[0]
    return latest


def put_grant(conn: sqlite3.Connection, grant: Grant) -> None:
    require_tenant(conn, grant.tenant_id)
    conn.execute(
        """INSERT INTO grants (tenant_id, grant_id, client_id, sub, scope, updated_at)
        VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (tenant_id, grant_id) DO UPDATE SET client_id = excluded.client_id,
            sub = excluded.sub, scope = excluded.scope, updated_at = excluded.updated_at""",
        grant_row(grant),
    )


# --- client assertions -------------------------------------------------------------------

USE_ASSERTION_ID = """INSERT INTO assertion_ids (tenant_id, client_id, jti, exp)
VALUES (:tenant, :client, :jti, :exp)
ON CONFLICT (tenant_id, client_id, jti) DO UPDATE SET exp = excluded.exp
WHERE assertion_ids.exp < :now"""


def use_assertion_id(
    conn: sqlite3.Connection, tenant_id: TenantId, client_id: ClientId, jti: str, exp: int, now: int
) -> bool:
    """Inserted, or an expired record taken over: one row changed; a replay: none."""
    params = {"tenant": tenant_id, "client": client_id, "jti": jti, "exp": exp, "now": now}
    changed: int = conn.execute(USE_ASSERTION_ID, params).rowcount
    return changed == 1


# --- housekeeping ----------------------------------------------------------------------

EXPIRING_TABLES = ("credentials", "denied", "assertion_ids", "auth_failures")
"""Tables whose rows carry an ``exp`` and are purged after it."""


def purge_expired(conn: sqlite3.Connection, before: int, limit: int) -> list[int]:
    """Drop up to ``limit`` expired rows of each of ``EXPIRING_TABLES``: how many, each."""
    return [
        # Table names come from the fixed tuple above, never from input.
        conn.execute(
            f"DELETE FROM {table} WHERE rowid IN"  # noqa: S608
            f" (SELECT rowid FROM {table} WHERE exp < ? LIMIT ?)",
            (before, limit),
        ).rowcount
        for table in EXPIRING_TABLES
    ]
