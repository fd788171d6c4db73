"""Background upkeep of each process: purging credentials long past ``exp``, and
finishing tenant deletions that a stopped process left half done.

A credential is kept ``credential_retention_s`` after it expires (so it cannot be
registered again and come back while clocks disagree), then dropped. The MongoDB
backend also has TTL indexes; the purge is harmless there.
"""

from __future__ import annotations

import asyncio

import structlog

from app.errors import StoreUnavailable
from app.services import Services

log = structlog.get_logger("revocation.housekeeping")
PURGE_INTERVAL_S = 3600.0


async def purge_once(services: Services) -> int:
    before = services.clock() - services.config.credential_retention_s
    purged = await services.store.purge_expired(before)
    if purged:
        log.info("expired_credentials_purged", count=purged)
    return purged


async def finish_deletions(services: Services) -> int:
    finished = await services.store.finish_deletions()
    if finished:
        log.info("tenant_deletions_finished", count=finished)
    return finished


async def run_housekeeping(services: Services, interval_s: float = PURGE_INTERVAL_S) -> None:
    while True:
        try:
            await finish_deletions(services)
            await purge_once(services)
        except StoreUnavailable:
            pass  # the next round retries; requests report the outage
        except Exception:
            # A bug must not end the upkeep for the life of the process.
            log.exception("housekeeping_failed")
        await asyncio.sleep(interval_s)
