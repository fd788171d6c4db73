"""Each tenant's retention horizon (``app.store.late_registration``): the greatest
cut-off with which its not-before marks or ended sessions were purged, one row a tenant.

It is advanced by the purge's own write job, so a registration (another job of the one
writer) sees a mark, or the horizon that stands for it, never neither.
"""

from __future__ import annotations

import sqlite3

from app.types import TenantId

# Only for a tenant that exists: a purge running into the tenant's deletion must not
# leave a row that a new tenant of the same id would inherit.
ADVANCE = """INSERT INTO retention_horizon (tenant_id, purged_before)
SELECT :tenant, :before WHERE EXISTS (SELECT 1 FROM tenants WHERE tenant_id = :tenant)
ON CONFLICT (tenant_id) DO UPDATE SET purged_before = max(purged_before, excluded.purged_before)"""

READ = "SELECT purged_before FROM retention_horizon WHERE tenant_id = ?"


def advance(conn: sqlite3.Connection, tenant_id: TenantId, before: int) -> None:
    """Move the tenant's horizon to ``before``, never back."""
    conn.execute(ADVANCE, {"tenant": tenant_id, "before": before})


def read(conn: sqlite3.Connection, tenant_id: TenantId) -> int | None:
    """The tenant's horizon; None: nothing was purged."""
    rows = conn.execute(READ, (tenant_id,)).fetchall()
    return int(rows[0][0]) if rows else None
