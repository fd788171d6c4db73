"""Expired credentials are kept for the retention period, then purged."""

from __future__ import annotations

import time

import httpx

from app.housekeeping import purge_once
from app.services import Services
from tests.support.world import make_world


async def test_purge_keeps_recently_expired_credentials(
    http: httpx.AsyncClient, services: Services
) -> None:
    world = await make_world(http)
    now = int(time.time())
    day = services.config.credential_retention_s
    recent = {
        "token": "recent",
        "type": "access_token",
        "client_id": "app",
        "exp": now - 60,
        "iat": now - 120,
    }
    ancient = {
        "token": "ancient",
        "type": "access_token",
        "client_id": "app",
        "exp": now - day - 60,
        "iat": now - day - 120,
    }
    assert await world.tenant.register(recent, ancient) == {"registered": 2, "duplicates": 0}
    assert await purge_once(services) == 1
    # The recently expired one is still known: registering it again is a duplicate.
    assert await world.tenant.register(recent, ancient) == {"registered": 1, "duplicates": 1}
