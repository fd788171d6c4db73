"""Background upkeep of each process: purging credentials long past ``exp``, purging
what each tenant's retention settings let go (``app.retention``), dropping signing keys
long rotated out, and finishing tenant deletions that a stopped process left half done.

A credential or deny-list entry is kept ``credential_retention_s`` after it expires (so
it cannot be registered again and come back while clocks disagree), then dropped. The
MongoDB backend also has TTL indexes for those; the purge is harmless there. Events,
not-before marks and ended sessions have per-tenant cut-offs, which no TTL index can
read, so they go only here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from app.errors import StoreUnavailable
from app.propagation.signing_keys import DROP_AFTER_S
from app.retention import Cutoffs, cutoffs
from app.services import Services
from app.settings import TenantSettings
from app.store import sweeps
from app.store.base import Store
from app.types import TenantId

log = structlog.get_logger("revocation.housekeeping")
PURGE_INTERVAL_S = 3600.0
RETRY_INTERVAL_S = 30.0
RETENTION_CHUNK = 1_000
"""Rows (documents) per retention transaction: a tenant's revocations wait at most for
one chunk's deletes."""

Chunk = Callable[[], Awaitable[int]]


async def purge_once(services: Services) -> int:
    before = services.clock() - services.config.credential_retention_s
    purged = await services.store.purge_expired(before)
    if purged:
        log.info("expired_credentials_purged", count=purged)
    return purged


async def in_chunks(chunk: Chunk) -> int:
    """Call ``chunk`` until it drops nothing, letting the event loop run requests in
    between: how many it dropped in all."""
    total = 0
    while dropped := await chunk():
        total += dropped
        await asyncio.sleep(0)
    return total


KINDS = ("events", "not_before_marks", "ended_sessions")


async def purge_tenant(store: Store, tenant_id: TenantId, cut: Cutoffs, now: int) -> list[int]:
    """Drop what the tenant's cut-offs let go, in chunks: how many of each of ``KINDS``."""
    events = marks = sessions = 0
    if cut.events_before is not None:
        before = cut.events_before
        events = await in_chunks(lambda: store.purge_events(tenant_id, before, RETENTION_CHUNK))
    if cut.marks_before is not None:
        set_before = cut.marks_before
        marks = await in_chunks(lambda: store.purge_marks(tenant_id, set_before, RETENTION_CHUNK))
        sessions = await in_chunks(
            lambda: store.purge_ended_sessions(tenant_id, set_before, now, RETENTION_CHUNK)
        )
    return [events, marks, sessions]


async def purge_retained(services: Services) -> dict[str, int]:
    """Drop, tenant by tenant, the events, not-before marks and ended sessions past the
    tenant's retention; one log line per kind that dropped any. The counts by kind."""
    now = services.clock()
    margin = services.config.credential_retention_s
    counts = dict.fromkeys(KINDS, 0)
    tenants = dict.fromkeys(KINDS, 0)
    for tenant in await services.store.list_tenants():
        cut = cutoffs(TenantSettings.of(tenant.settings), now, margin)
        dropped = await purge_tenant(services.store, tenant.tenant_id, cut, now)
        for kind, count in zip(KINDS, dropped, strict=True):
            counts[kind] += count
            tenants[kind] += count > 0
    for kind, count in counts.items():
        if count:
            log.info("retention_purged", kind=kind, count=count, tenants=tenants[kind])
    return counts


async def drop_retired_signing_keys(services: Services) -> int:
    """Drop the tenants' signing keys that stopped being published over a day ago
    (``app.propagation.signing_keys``)."""
    before = services.clock() - DROP_AFTER_S
    dropped = 0
    for tenant in await services.store.list_tenants():
        dropped += await services.store.drop_retired_signing_keys(tenant.tenant_id, before)
    if dropped:
        log.info("retired_signing_keys_dropped", count=dropped)
    return dropped


async def finish_deletions(services: Services) -> int:
    finished = await services.store.finish_deletions()
    if finished:
        log.info("tenant_deletions_finished", count=finished)
    return finished


async def finish_sweeps(services: Services, idle_s: int = sweeps.IDLE_S) -> int:
    """Finish the mass revocations (``app.store.sweeps``) that a stopped process left
    committed but not written to every credential; reads see them whole meanwhile."""
    finished = await services.store.finish_sweeps(idle_s)
    if finished:
        log.info("sweeps_finished", count=finished)
    return finished


async def run_housekeeping(
    services: Services,
    interval_s: float = PURGE_INTERVAL_S,
    retry_s: float = RETRY_INTERVAL_S,
) -> None:
    # The second round comes soon after start-up: a sweep that a stopped process was
    # writing until just before this one started is not idle yet in the first round.
    next_pause = min(interval_s, sweeps.IDLE_S + 1)
    while True:
        pause, next_pause = next_pause, interval_s
        try:
            await finish_sweeps(services)
            await finish_deletions(services)
            await purge_once(services)
            await purge_retained(services)
            await drop_retired_signing_keys(services)
        except StoreUnavailable:
            # Requests report the outage. Retried soon: a deletion or sweep that start-up
            # could not finish (a killed instance's transaction still holding its
            # documents) should not wait an hour.
            pause = min(pause, retry_s)
        except Exception:
            # A bug must not end the upkeep for the life of the process.
            log.exception("housekeeping_failed")
        await asyncio.sleep(pause)
