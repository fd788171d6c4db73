"""The schema as an ordered list of migrations; ``PRAGMA user_version`` counts those applied.

Append new migrations; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3

from app.errors import StoreUnavailable

Migration = tuple[str, ...]

MIGRATIONS: tuple[Migration, ...] = (
    (
        """CREATE TABLE config_version (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL
        )""",
        "INSERT INTO config_version (id, version) VALUES (1, 0)",
        """CREATE TABLE tenants (
            tenant_id TEXT PRIMARY KEY,
            settings TEXT NOT NULL,
            key_salt BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        # Normalised issuers and aliases: the primary key makes them unique across tenants.
        """CREATE TABLE issuers (
            issuer TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE
        ) WITHOUT ROWID""",
        "CREATE INDEX issuers_tenant ON issuers (tenant_id)",
        """CREATE TABLE admin_keys (
            tenant_id TEXT NOT NULL,
            key_id TEXT NOT NULL,
            key_hash BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, key_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE clients (
            tenant_id TEXT NOT NULL,
            client_id TEXT NOT NULL,
            type TEXT NOT NULL,
            token_endpoint_auth_method TEXT NOT NULL,
            scope TEXT NOT NULL,
            enabled INTEGER NOT NULL,
            secret_hash BLOB,
            secret_encrypted BLOB,
            jwks TEXT,
            jwks_uri TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, client_id)
        )""",
        """CREATE TABLE credentials (
            tenant_id TEXT NOT NULL,
            token_hash BLOB NOT NULL,
            type TEXT NOT NULL,
            client_id TEXT NOT NULL,
            exp INTEGER NOT NULL,
            sub TEXT,
            grant_id TEXT,
            device_session_id TEXT,
            scope TEXT,
            iat INTEGER,
            revoked_at INTEGER,
            revoked_cause TEXT
        )""",
        "CREATE UNIQUE INDEX credentials_hash ON credentials (tenant_id, token_hash)",
        # Partial indexes: most credentials carry no session, many no grant; a query
        # term ``col = ?`` implies ``col IS NOT NULL``, so SQLite still uses them.
        """CREATE INDEX credentials_grant ON credentials (tenant_id, grant_id)
            WHERE grant_id IS NOT NULL""",
        """CREATE INDEX credentials_session ON credentials (tenant_id, device_session_id)
            WHERE device_session_id IS NOT NULL""",
        # (sub, client_id) rather than (client_id, sub): serves ByClientSubject and
        # subject_clients (by sub alone); credentials_client serves ByClient.
        """CREATE INDEX credentials_subject ON credentials (tenant_id, sub, client_id)
            WHERE sub IS NOT NULL""",
        "CREATE INDEX credentials_client ON credentials (tenant_id, client_id)",
        "CREATE INDEX credentials_exp ON credentials (exp)",
        """CREATE TABLE grants (
            tenant_id TEXT NOT NULL,
            grant_id TEXT NOT NULL,
            client_id TEXT NOT NULL,
            sub TEXT NOT NULL,
            scope TEXT,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, grant_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX grants_subject ON grants (tenant_id, sub, client_id)",
        """CREATE TABLE ended_sessions (
            tenant_id TEXT NOT NULL,
            device_session_id TEXT NOT NULL,
            ended_at INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, device_session_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE not_before (
            tenant_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            at INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, kind, key)
        ) WITHOUT ROWID""",
        """CREATE TABLE denied (
            tenant_id TEXT NOT NULL,
            key TEXT NOT NULL,
            exp INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, key)
        )""",
        "CREATE INDEX denied_exp ON denied (exp)",
        """CREATE TABLE events (
            tenant_id TEXT NOT NULL,
            id INTEGER NOT NULL,
            time INTEGER NOT NULL,
            type TEXT NOT NULL,
            cause TEXT NOT NULL,
            count INTEGER NOT NULL,
            client_id TEXT,
            sub TEXT,
            grant_id TEXT,
            token_type TEXT,
            jti TEXT,
            device_session_id TEXT,
            PRIMARY KEY (tenant_id, id)
        ) WITHOUT ROWID""",
        # The last event id per tenant, bumped in the write transaction: ids follow
        # commit order and are never reused, even when old events are dropped.
        """CREATE TABLE event_seq (
            tenant_id TEXT PRIMARY KEY,
            last_id INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ),
    (
        # Tenants whose configuration is gone and whose data is still being deleted.
        """CREATE TABLE deleted_tenants (
            tenant_id TEXT PRIMARY KEY,
            deleted_at INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ),
    (
        # Uploaded tenant plugins, every version kept. A rowid table: sources can be
        # large, and WITHOUT ROWID suits small rows only.
        """CREATE TABLE plugin_versions (
            tenant_id TEXT NOT NULL,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            source TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            hooks TEXT NOT NULL,
            uploaded_by TEXT NOT NULL,
            uploaded_at INTEGER NOT NULL,
            current INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, name, version)
        )""",
        # At most one current version per name; serves the current version of a name
        # and the tenant's current versions by name (queries repeat ``current``).
        """CREATE UNIQUE INDEX plugin_versions_current ON plugin_versions (tenant_id, name)
            WHERE current""",
    ),
    (
        # The jti of every client assertion (RFC 7523) until its exp: used once only.
        """CREATE TABLE assertion_ids (
            tenant_id TEXT NOT NULL,
            client_id TEXT NOT NULL,
            jti TEXT NOT NULL,
            exp INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, client_id, jti)
        )""",
        "CREATE INDEX assertion_ids_exp ON assertion_ids (exp)",
    ),
    (
        # Failed client authentications per key (client and source address, or source
        # address) and fixed window; exp is the window's end. A rowid table, for purging.
        """CREATE TABLE auth_failures (
            tenant_id TEXT NOT NULL,
            key TEXT NOT NULL,
            window_start INTEGER NOT NULL,
            count INTEGER NOT NULL,
            exp INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, key, window_start)
        )""",
        "CREATE INDEX auth_failures_exp ON auth_failures (exp)",
    ),
    (
        # Retention (``app.retention``): each tenant's oldest events, marks and ended
        # sessions, found without reading the rest of the tenant's rows.
        "CREATE INDEX events_time ON events (tenant_id, time)",
        "CREATE INDEX not_before_at ON not_before (tenant_id, at)",
        "CREATE INDEX ended_sessions_at ON ended_sessions (tenant_id, ended_at)",
    ),
    (
        # Sweeps (``app.store.sweeps``): revocations of a client's every credential,
        # committed at once and written to each credential in chunks. ``swept`` is the
        # tenant's latest pending sweep when the credential was registered (NULL: none);
        # adding a column rewrites no row.
        "ALTER TABLE credentials ADD COLUMN swept INTEGER",
        # AUTOINCREMENT: ids are never reused, so a stamp never names a later sweep.
        """CREATE TABLE sweeps (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            tenant_id TEXT NOT NULL,
            at INTEGER NOT NULL,
            cause TEXT NOT NULL,
            count INTEGER NOT NULL,
            events TEXT NOT NULL,
            touched_at INTEGER NOT NULL
        )""",
        "CREATE INDEX sweeps_tenant ON sweeps (tenant_id, id)",
        # One row per scope of a sweep, until that scope is done; ``after_rowid`` is how
        # far it got (credentials are swept in rowid order). Empty but while a sweep is
        # pending, so the reads that consult it cost next to nothing.
        """CREATE TABLE sweep_scopes (
            tenant_id TEXT NOT NULL,
            client_id TEXT NOT NULL,
            sub TEXT,
            sweep_id INTEGER NOT NULL,
            at INTEGER NOT NULL,
            cause TEXT NOT NULL,
            after_rowid INTEGER NOT NULL
        )""",
        "CREATE INDEX sweep_scopes_client ON sweep_scopes (tenant_id, client_id)",
    ),
    (
        # Propagation to resource servers (``app.propagation``, contract section 4.4).
        # The tenant's own signing keys: configuration (they move config_version).
        """CREATE TABLE signing_keys (
            tenant_id TEXT NOT NULL,
            kid TEXT NOT NULL,
            alg TEXT NOT NULL,
            public_jwk TEXT NOT NULL,
            sealed_private BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            retire_at INTEGER,
            PRIMARY KEY (tenant_id, kid)
        ) WITHOUT ROWID""",
        # Receivers of Security Event Tokens: configuration …
        """CREATE TABLE receivers (
            tenant_id TEXT NOT NULL,
            receiver_id TEXT NOT NULL,
            config TEXT NOT NULL,
            authorization_sealed BLOB,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, receiver_id)
        ) WITHOUT ROWID""",
        # … and their delivery state, written on every delivery (no config_version).
        """CREATE TABLE receiver_state (
            tenant_id TEXT NOT NULL,
            receiver_id TEXT NOT NULL,
            cursor INTEGER NOT NULL,
            status TEXT NOT NULL,
            paused_reason TEXT,
            failing_since INTEGER,
            attempts INTEGER NOT NULL,
            next_attempt_at INTEGER NOT NULL,
            last_error TEXT,
            delivered INTEGER NOT NULL,
            lease_owner TEXT,
            lease_until INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, receiver_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE delivery_log (
            tenant_id TEXT NOT NULL,
            receiver_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            time INTEGER NOT NULL,
            event_id INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            status INTEGER,
            detail TEXT,
            duration_ms INTEGER,
            PRIMARY KEY (tenant_id, receiver_id, seq)
        ) WITHOUT ROWID""",
        # Token Status List: each registered credential's index, where the tenant has a
        # list, and the last index handed out per tenant (never reused). The index holds
        # the revoked ones only, and covers the read: building a list reads its set bits,
        # not every entry, and a registration writes no index entry.
        "ALTER TABLE credentials ADD COLUMN status_idx INTEGER",
        """CREATE INDEX credentials_status ON credentials (tenant_id, status_idx, revoked_at)
            WHERE status_idx IS NOT NULL AND revoked_at IS NOT NULL""",
        """CREATE TABLE status_seq (
            tenant_id TEXT PRIMARY KEY,
            last_idx INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ),
    (
        # Each tenant's retention horizon (``app.store.late_registration``): the greatest
        # cut-off with which its marks or ended sessions were purged; no row: none was.
        """CREATE TABLE retention_horizon (
            tenant_id TEXT PRIMARY KEY,
            purged_before INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ),
    (
        # Which tenant each config_version step concerned (``config_changes``): caches
        # reload those tenants only. Versions before this migration have no row, which
        # readers take for "unknown: reload everything".
        """CREATE TABLE config_changes (
            version INTEGER PRIMARY KEY,
            tenant_id TEXT NOT NULL
        )""",
    ),
    (
        # Whether the session's tokens ended with it (a device secret's revocation, a
        # Global Token Revocation) or only the session (an SPID logout, whose other tokens
        # stay valid). Sessions ended before this migration were taken as the former.
        "ALTER TABLE ended_sessions ADD COLUMN tokens_end INTEGER NOT NULL DEFAULT 1",
    ),
)

TENANT_TABLES: tuple[str, ...] = (
    "issuers",
    "admin_keys",
    "clients",
    "plugin_versions",
    "credentials",
    "grants",
    "ended_sessions",
    "not_before",
    "denied",
    "assertion_ids",
    "auth_failures",
    "events",
    "event_seq",
    "sweeps",
    "sweep_scopes",
    "signing_keys",
    "receivers",
    "receiver_state",
    "delivery_log",
    "status_seq",
    "retention_horizon",
    "tenants",
)
"""Every table holding a tenant's rows (``tenants`` last)."""

CONFIG_TABLES: frozenset[str] = frozenset(
    {"tenants", "issuers", "admin_keys", "clients", "plugin_versions", "signing_keys", "receivers"}
)
"""Tables whose changes bump ``config_version``."""

DATA_TABLES: dict[str, str] = {
    "sweep_scopes": "rowid",
    "sweeps": "id",
    "credentials": "rowid",
    "grants": "grant_id",
    "ended_sessions": "device_session_id",
    "not_before": "kind, key",
    "denied": "rowid",
    "assertion_ids": "rowid",
    "auth_failures": "rowid",
    "events": "id",
    "event_seq": "tenant_id",
    "receiver_state": "receiver_id",
    "delivery_log": "receiver_id, seq",
    "status_seq": "tenant_id",
    "retention_horizon": "tenant_id",
}
"""A tenant's data (every tenant table but the configuration), with the columns that
name a row within the tenant, for deleting it in chunks."""


def schema_version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchall()[0][0]
    return version


def migrate(conn: sqlite3.Connection) -> None:
    """Apply pending migrations in one transaction; a no-op when the schema is current.

    ``BEGIN IMMEDIATE`` takes the write lock before the version is read again, so two
    processes opening one file at once apply each migration exactly once.
    """
    target = len(MIGRATIONS)
    if schema_version(conn) == target:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(conn)
        if version > target:
            raise StoreUnavailable(
                f"the database schema version {version} is newer than this service knows"
            )
        for migration in MIGRATIONS[version:]:
            for statement in migration:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {target:d}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
