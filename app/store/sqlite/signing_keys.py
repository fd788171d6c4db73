"""The tenant's own signing keys (``app.propagation.signing_keys``): the reads, and the
write jobs for the group-commit writer.

Keys are configuration: every write checks the tenant in its transaction and bumps
``config_version``, so every process's cached key list follows a rotation. The writer
(and, across processes, SQLite's write lock) serialises two first uses: the second finds
the first one's key current and keeps it.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from typing import Any

from app.models import SigningKey
from app.store.sqlite.writes import bump_config, one, require_tenant
from app.types import TenantId

Row = tuple[Any, ...]

_COLUMNS = "tenant_id, kid, alg, public_jwk, sealed_private, created_at, retire_at"
LIST = (
    f"SELECT {_COLUMNS} FROM signing_keys WHERE tenant_id = ?"  # noqa: S608
    " ORDER BY retire_at IS NOT NULL, created_at DESC, kid"
)
_CURRENT = f"SELECT {_COLUMNS} FROM signing_keys WHERE tenant_id = ? AND retire_at IS NULL"  # noqa: S608


def key_of(row: Row) -> SigningKey:
    return SigningKey(
        tenant_id=row[0],
        kid=row[1],
        alg=row[2],
        public_jwk=json.loads(row[3]),
        sealed_private=bytes(row[4]),
        created_at=row[5],
        retire_at=row[6],
    )


def _key_row(key: SigningKey) -> Row:
    return (
        key.tenant_id,
        key.kid,
        key.alg,
        json.dumps(key.public_jwk, separators=(",", ":")),
        key.sealed_private,
        key.created_at,
        None,
    )


def add(conn: sqlite3.Connection, key: SigningKey, retire_current_at: int | None) -> SigningKey:
    require_tenant(conn, key.tenant_id)
    current = one(conn, _CURRENT, (key.tenant_id,))
    if current is not None:
        if retire_current_at is None:
            return key_of(current)  # first use lost the race: the winner's key stays
        conn.execute(
            "UPDATE signing_keys SET retire_at = ? WHERE tenant_id = ? AND kid = ?",
            (retire_current_at, key.tenant_id, current[1]),
        )
    conn.execute(
        f"INSERT INTO signing_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        _key_row(key),
    )
    bump_config(conn, key.tenant_id)
    return replace(key, retire_at=None)


def drop_retired(conn: sqlite3.Connection, tenant_id: TenantId, before: int) -> int:
    dropped: int = conn.execute(
        "DELETE FROM signing_keys WHERE tenant_id = ? AND retire_at IS NOT NULL AND retire_at < ?",
        (tenant_id, before),
    ).rowcount
    if dropped:
        bump_config(conn, tenant_id)
    return dropped


def reseal(conn: sqlite3.Connection, key: SigningKey, sealed_private: bytes) -> bool:
    changed: int = conn.execute(
        "UPDATE signing_keys SET sealed_private = ?"
        " WHERE tenant_id = ? AND kid = ? AND sealed_private = ?",
        (sealed_private, key.tenant_id, key.kid, key.sealed_private),
    ).rowcount
    if changed:
        bump_config(conn, key.tenant_id)
    return changed > 0
