"""Tenant plugins: the reads, and the write jobs for the group-commit writer.

Every write checks the tenant in its transaction and bumps ``config_version``: plugin
code is configuration, and every process must run the new code from its next request.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace

from app.models import PluginVersion
from app.store.sqlite.rows import plugin_row
from app.store.sqlite.writes import bump_config, one, require_tenant
from app.types import TenantId

SELECT = """SELECT tenant_id, name, version, source, sha256, hooks, uploaded_by, uploaded_at,
    current FROM plugin_versions"""

# ``AND current`` repeats the partial index's condition, so that SQLite uses the index.
GET_CURRENT = SELECT + " WHERE tenant_id = ? AND name = ? AND current"
GET_VERSION = SELECT + " WHERE tenant_id = ? AND name = ? AND version = ?"
LIST_VERSIONS = SELECT + " WHERE tenant_id = ? AND name = ? ORDER BY version"
LIST_CURRENT = SELECT + " WHERE tenant_id = ? AND current ORDER BY name"

_UNSET_CURRENT = (
    "UPDATE plugin_versions SET current = 0 WHERE tenant_id = ? AND name = ? AND current"
)


def add_version(conn: sqlite3.Connection, plugin: PluginVersion) -> PluginVersion:
    key = (plugin.tenant_id, plugin.name)
    require_tenant(conn, plugin.tenant_id)
    latest = one(
        conn, "SELECT max(version) FROM plugin_versions WHERE tenant_id = ? AND name = ?", key
    )[0]
    stored = replace(plugin, version=(latest or 0) + 1, current=True)
    # The old current version first: the partial unique index allows one at a time.
    conn.execute(_UNSET_CURRENT, key)
    conn.execute(
        """INSERT INTO plugin_versions (tenant_id, name, version, source, sha256, hooks,
            uploaded_by, uploaded_at, current) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        plugin_row(stored),
    )
    bump_config(conn, plugin.tenant_id)
    return stored


def set_current(conn: sqlite3.Connection, tenant_id: TenantId, name: str, version: int) -> bool:
    require_tenant(conn, tenant_id)
    found = one(
        conn,
        "SELECT current FROM plugin_versions WHERE tenant_id = ? AND name = ? AND version = ?",
        (tenant_id, name, version),
    )
    if found is None:
        return False
    if not found[0]:
        conn.execute(_UNSET_CURRENT, (tenant_id, name))
        conn.execute(
            "UPDATE plugin_versions SET current = 1"
            " WHERE tenant_id = ? AND name = ? AND version = ?",
            (tenant_id, name, version),
        )
        bump_config(conn, tenant_id)
    return True


def delete(conn: sqlite3.Connection, tenant_id: TenantId, name: str) -> bool:
    require_tenant(conn, tenant_id)
    deleted: int = conn.execute(
        "DELETE FROM plugin_versions WHERE tenant_id = ? AND name = ?", (tenant_id, name)
    ).rowcount
    if deleted:
        bump_config(conn, tenant_id)
    return deleted > 0
