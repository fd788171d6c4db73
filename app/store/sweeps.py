"""Sweeps: revocations that may take any number of credentials, committed at once and
written to each credential in chunks afterwards. Both backends follow these rules.

A plan's sweeping selectors (``RevocationPlan.sweeps``: ``token_type_hint=all``, a
subject's withdrawal of a client) can name a million credentials: too many rows for one
transaction (MongoDB limits a transaction's size and life; on SQLite it would hold every
other tenant's writes for a second). So a revocation with sweeps is applied in steps:

1. One small transaction commits the rest of the plan (its not-before marks, which take
   the client's JWTs at once, and its other selectors) and a *pending sweep*: its time,
   cause, scopes and the plan's event drafts, under a per-tenant increasing ``id``.
2. From that commit on, every read treats a credential a pending sweep covers (below) as
   revoked at the sweep's time, on every worker and instance: the revocation is complete
   as clients see it, though no credential's row has changed yet.
3. The revocation's own request then writes ``revoked_at`` to the covered credentials,
   a chunk per transaction, then appends the plan's events (``count``: what the sweep
   took down, counted as it went) and removes the sweep. The ``200`` comes after that.
   If the process stops half-way, the housekeeping of any process finishes the sweep
   (``Store.finish_sweeps``); covered credentials read as revoked until then.

A sweep covers a credential of its scope that is not revoked, expires after the sweep's
time, and was registered before the sweep was committed. A registration stamps each
credential with the tenant's latest pending sweep ``id`` (``stamp``; none while no sweep
is pending), so those registered after a sweep are told apart whatever the clocks say.
One registered after it with an ``iat`` at or before it is revoked from the start by the
sweep's not-before mark (``cascade.registered_state``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from app.models import Credential, EventDraft, SweepScope

IDLE_S = 30
"""A sweep no process has advanced for this long is finished by housekeeping: its
process stopped (a live one advances it every chunk)."""


@dataclass(frozen=True, slots=True)
class PendingSweep:
    id: int
    at: int
    cause: str
    scopes: tuple[SweepScope, ...]

    def covers(self, client_id: str, sub: str | None, exp: int, stamp: int | None) -> bool:
        """Whether the sweep takes a live credential of these fields, stored with
        ``stamp``: of one of its scopes, expiring after it, registered before it."""
        return (
            self.id > (stamp or 0)
            and exp > self.at
            and any(scope.covers(client_id, sub) for scope in self.scopes)
        )


def as_read(c: Credential, stamp: int | None, pending: Sequence[PendingSweep]) -> Credential:
    """``c`` as reads see it: revoked at the time of a pending sweep that covers it."""
    if c.revoked_at is not None:
        return c
    for sweep in pending:
        if sweep.covers(c.client_id, c.sub, c.exp, stamp):
            return replace(c, revoked_at=sweep.at, revoked_cause=sweep.cause)
    return c


def dump_events(drafts: Sequence[EventDraft]) -> str:
    """The plan's event drafts, kept with the sweep until it is done."""
    return json.dumps([asdict(draft) for draft in drafts], separators=(",", ":"))


def load_events(text: str) -> list[EventDraft]:
    return [EventDraft(**fields) for fields in json.loads(text)]
