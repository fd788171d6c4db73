"""A tenant's event feed, paged by cursor.

The cursor is the id of the last event seen, as a string (``"0"`` or none: from the
beginning). ``next`` is the id of the last event returned, or the given cursor when there
are none, so a poller can keep passing ``next`` back.
"""

from __future__ import annotations

from app.admin.tenants import require_tenant
from app.errors import FieldError
from app.models import Event
from app.services import Services
from app.types import TenantId

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_CURSOR = 2**63 - 1


def _number(value: str) -> int | None:
    if value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    return None


def parse_after(value: str | None) -> int:
    if value is None or value == "":
        return 0
    after = _number(value)
    if after is None or after > MAX_CURSOR:
        raise FieldError("after", "must be an event id from a previous page")
    return after


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    limit = _number(value)
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise FieldError("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
    return limit


async def list_events(
    services: Services, tenant_id: TenantId, after: int, limit: int
) -> tuple[list[Event], str]:
    """Up to ``limit`` events after ``after``, in order, and the next cursor."""
    await require_tenant(services, tenant_id)
    events = await services.store.list_events(tenant_id, after, limit)
    return events, str(events[-1].id if events else after)
