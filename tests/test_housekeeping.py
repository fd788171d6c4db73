"""Expired credentials are kept for the retention period, then purged; events, marks and
ended sessions go by their tenant's retention settings, in chunks."""

from __future__ import annotations

import secrets
import time

import httpx
import pytest
from structlog.testing import capture_logs

from app import housekeeping
from app.housekeeping import purge_once, purge_retained
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


async def test_retention_purges_in_chunks_and_logs_counts_never_a_token(
    http: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(housekeeping, "RETENTION_CHUNK", 2)
    start = int(time.time())
    services.clock = lambda: start
    world = await make_world(http, retention={"events_days": 1})
    tokens = [f"token-{n}-{secrets.token_hex(8)}" for n in range(5)]
    await world.tenant.register(
        *({"token": t, "type": "access_token", "client_id": "app"} for t in tokens)
    )
    for token in tokens:
        assert (await world.tenant.revoke(token, auth=world.app)).status_code == 200

    services.clock = lambda: start + 2 * 86_400
    with capture_logs() as logs:
        counts = await purge_retained(services)
    # Five events, two a transaction: the loop went on past full chunks.
    assert counts == {"events": 5, "not_before_marks": 0, "ended_sessions": 0}
    assert await world.tenant.events() == []
    purged = [line for line in logs if line["event"] == "retention_purged"]
    assert purged == [
        {
            "event": "retention_purged",
            "kind": "events",
            "count": 5,
            "tenants": 1,
            "log_level": "info",
        }
    ]
    assert not any(token in repr(logs) for token in tokens)
