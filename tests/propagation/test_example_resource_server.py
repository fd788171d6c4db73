"""``examples/resource_server.py``: a caching resource server that still refuses a
revoked token, fed by the events feed (long-poll) or by pushed SETs, on both stores.

The example caches introspection answers for five minutes: without propagation the
revoked token would keep being accepted, so these tests fail if the feed or the SETs
stop reaching it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app.propagation.rfc8417 import SET_TYP, security_event_claims
from app.propagation.signing_keys import sign
from app.services import Services
from tests.support.world import SECRET, World, make_world

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "resource_server.py"
DEADLINE_S = 20.0


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_resource_server", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


example = load_example()


@pytest.fixture
async def world(http: httpx.AsyncClient) -> World:
    world = await make_world(http)
    await world.tenant.client("api", secret=SECRET, scope="introspect revocation_events")
    await world.tenant.register(
        {"token": "at-alice", "type": "access_token", "client_id": "app", "sub": "alice"},
        {"token": "at-bob", "type": "access_token", "client_id": "app", "sub": "bob"},
    )
    return world


@pytest.fixture
def to_service(app: Starlette) -> httpx.AsyncClient:
    """What the example uses to reach the service: its issuer URLs, in process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app))


async def running(world: World, to_service: httpx.AsyncClient, *, feed: bool) -> Any:
    settings = example.Settings(world.tenant.issuer, "api", SECRET, follow_feed=feed)
    return example.create_app(settings, http=to_service)


async def get_resource(rs: Starlette, token: str) -> int:
    transport = httpx.ASGITransport(app=rs)
    async with httpx.AsyncClient(transport=transport, base_url="http://rs") as client:
        r = await client.get("/resource", headers={"Authorization": f"Bearer {token}"})
        return r.status_code


async def refused_soon(rs: Starlette, token: str) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while await get_resource(rs, token) != 401:
        assert asyncio.get_running_loop().time() < deadline, "the revoked token is still accepted"
        await asyncio.sleep(0.01)


@pytest.fixture
async def rs_with_feed(world: World, to_service: httpx.AsyncClient) -> AsyncIterator[Starlette]:
    rs = await running(world, to_service, feed=True)
    async with rs.router.lifespan_context(rs):
        yield rs


async def test_the_feed_makes_a_cached_token_refused(world: World, rs_with_feed: Starlette) -> None:
    assert await get_resource(rs_with_feed, "at-alice") == 200
    assert await get_resource(rs_with_feed, "at-bob") == 200  # both cached now
    await world.tenant.revoke("at-alice", auth=world.app)
    await refused_soon(rs_with_feed, "at-alice")
    assert await get_resource(rs_with_feed, "at-bob") == 200
    assert rs_with_feed.state.server.cache.dropped == 1  # only alice's answer went


async def test_a_pushed_set_makes_a_cached_token_refused(
    world: World, services: Services, to_service: httpx.AsyncClient
) -> None:
    rs = await running(world, to_service, feed=False)
    async with rs.router.lifespan_context(rs):
        assert await get_resource(rs, "at-alice") == 200
        await world.tenant.revoke("at-alice", auth=world.app)
        assert await get_resource(rs, "at-alice") == 200  # cached: nothing told it yet
        tenant = services.directory.tenant(world.tenant.tenant_id)
        assert tenant is not None
        (event,) = await services.store.list_events(tenant.tenant_id, 0, 10)
        claims = security_event_claims(tenant, event, "https://rs.example", "rs", event.time)
        token = await sign(services, tenant, claims, SET_TYP)
        assert await rs.state.server.receive_set(token.encode())
        assert await get_resource(rs, "at-alice") == 401
        # A SET not signed by the tenant's key changes nothing.
        forged = token[: token.rindex(".")] + ".AAAA"
        assert not await rs.state.server.receive_set(forged.encode())
