"""The same token revoked 50 times at once: all 200, one revocation event."""

from __future__ import annotations

import asyncio

import httpx

from tests.support.world import make_world


async def test_fifty_concurrent_revocations_of_one_token(http: httpx.AsyncClient) -> None:
    world = await make_world(http, revocation={"cascade": "grant"})
    await world.tenant.register(
        {"token": "hot", "type": "refresh_token", "client_id": "app", "grant_id": "g"},
        {"token": "hot-at", "type": "access_token", "client_id": "app", "grant_id": "g"},
    )
    responses = await asyncio.gather(
        *(world.tenant.revoke("hot", auth=world.app) for _ in range(50))
    )
    assert [r.status_code for r in responses] == [200] * 50
    events = await world.tenant.events()
    assert len(events) == 1
    assert events[0]["count"] == 2
    assert not await world.active("hot-at")
