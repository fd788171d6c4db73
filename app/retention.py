"""How long a tenant's records are kept (the ``retention.*`` settings), as the cut-offs
of housekeeping's purges (``app.housekeeping``).

- Events: ``retention.events_days`` after their ``time``; 0 keeps them for ever. The
  feed's ids are never reused, so a cursor stays valid after its events are gone.
- Not-before marks and ended sessions: ``retention.max_token_lifetime_s`` after they
  were set, plus the service's margin for clocks that disagree
  (``credential_retention_s``); 0 keeps them for ever. A token they cover was issued at
  or before then, so it has expired by the cut-off, or lives longer than the tenant's
  bound and is refused for that (``app.oauth.rfc9068.outlives``). An ended session is
  kept further while a stored credential of it is live (the store checks that: a
  registered credential's ``exp`` is not held to the bound). A purge that drops marks
  or ended sessions advances the tenant's retention horizon to its cut-off, in the
  same transaction (``Store.retention_horizon``): a credential registered later with
  an ``iat`` before the horizon and an ``exp`` still ahead may have been under a mark
  that is gone, and lives longer than the bound, so it is registered revoked
  (``app.store.late_registration``).
- Expired credentials and deny-list entries: ``credential_retention_s`` after their
  ``exp``, for every tenant alike (``Store.purge_expired``).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.settings import TenantSettings

DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Times before which a tenant's records may go; None: kept for ever."""

    events_before: int | None
    """Events whose ``time`` is before this."""
    marks_before: int | None
    """Not-before marks set, and sessions ended, before this."""


def cutoffs(settings: TenantSettings, now: int, margin_s: int) -> Cutoffs:
    """The tenant's cut-offs at ``now``; ``margin_s`` is the service's allowance for
    clocks that disagree."""
    days = settings.events_retention_days
    lifetime = settings.max_token_lifetime_s
    return Cutoffs(
        events_before=now - days * DAY_S if days else None,
        marks_before=now - lifetime - margin_s if lifetime else None,
    )
