"""``{issuer}/revocation/events`` (contract section 4.4): pages, long-poll and Server-Sent
Events for the tenant's resource servers, on both stores.

Waits are on conditions with deadlines, never on the clock: a long-poll is known to be
waiting when the process's notifier counts it.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from app.application import create_app
from app.bootstrap import open_services
from app.http_protocol import HeaderLimitedProtocol
from app.propagation import sse
from app.services import Services
from tests.store.test_assertion_ids import second_instance
from tests.support.world import SECRET, World, basic, make_world

T = TypeVar("T")
FEED = "/revocation/events"
DEADLINE_S = 20.0
WAIT = "60"
"""Longer than ``DEADLINE_S``: a reader that was not woken fails its test."""


@pytest.fixture
async def world(http: httpx.AsyncClient) -> World:
    world = await make_world(http)
    await world.tenant.client("reader", secret=SECRET, scope="revocation_events")
    await world.tenant.register(
        *({"token": f"tok{i}", "type": "access_token", "client_id": "app"} for i in range(5))
    )
    return world


READER = basic("reader", SECRET)


def headers(world: World, **more: str) -> dict[str, str]:
    return {**world.tenant.headers, **READER, **more}


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let the event loop run until ``condition`` holds (bounded)."""
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"not within {DEADLINE_S} s: {what}"
        await asyncio.sleep(0.001)


async def woken(poll: Awaitable[T]) -> T:
    """The answer of a held request, well before its ``wait`` is up."""
    async with asyncio.timeout(DEADLINE_S):
        return await poll


async def revoke(world: World, token: str) -> None:
    r = await world.tenant.revoke(token, auth=world.app)
    assert r.status_code == 200, r.text


# --- pages -------------------------------------------------------------------------------


async def test_pages_resume_at_the_cursor(world: World) -> None:
    for i in range(3):
        await revoke(world, f"tok{i}")
    http = world.tenant.http
    r = await http.get(FEED, params={"limit": "2"}, headers=headers(world))
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    page = r.json()
    assert [e["type"] for e in page["events"]] == ["revoked", "revoked"]
    assert page["next"] == page["events"][-1]["id"]
    r = await http.get(FEED, params={"after": page["next"]}, headers=headers(world))
    rest = r.json()
    assert len(rest["events"]) == 1 and int(rest["events"][0]["id"]) > int(page["next"])
    # The admin feed's objects and cursor, exactly.
    assert page["events"] + rest["events"] == await world.tenant.events()
    r = await http.get(FEED, params={"after": rest["next"]}, headers=headers(world))
    assert r.json() == {"events": [], "next": rest["next"]}


async def test_a_wait_with_nothing_new_ends_with_an_empty_page(world: World) -> None:
    await revoke(world, "tok0")
    after = (await world.tenant.events())[-1]["id"]
    r = await world.tenant.http.get(
        FEED, params={"after": after, "wait": "0.2"}, headers=headers(world)
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"events": [], "next": after}


async def test_post_takes_client_secret_post_and_the_query(world: World) -> None:
    await world.tenant.client(
        "poster", secret=SECRET, scope="revocation_events", method="client_secret_post"
    )
    await revoke(world, "tok0")
    r = await world.tenant.http.post(
        FEED + "?limit=1",
        data={"client_id": "poster", "client_secret": SECRET},
        headers=world.tenant.headers,
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["events"]) == 1


async def test_tenants_see_only_their_own_events(world: World, http: httpx.AsyncClient) -> None:
    other = await make_world(http, "beta")
    await other.tenant.client("reader", secret=SECRET, scope="revocation_events")
    await revoke(world, "tok0")
    r = await http.get(FEED, headers={**other.tenant.headers, **READER})
    assert r.status_code == 200, r.text
    assert r.json() == {"events": [], "next": "0"}


# --- refusals ----------------------------------------------------------------------------


async def test_refusals(world: World) -> None:
    http, tenant = world.tenant.http, world.tenant.headers
    await world.tenant.client("pub", type="public", scope="revocation_events")
    for auth, params in (
        ({}, {}),
        (basic("reader", "wrong-secret-0123456789"), {}),
        ({}, {"client_id": "pub"}),
    ):
        r = await http.get(FEED, params=params, headers={**tenant, **auth})
        assert r.status_code == 401, (auth, params, r.text)
        assert r.json()["error"] == "invalid_client"
        assert "client_auth_id" in r.json()
    r = await http.get(FEED, headers={**tenant, **world.rs})  # introspect, not events
    assert r.status_code == 403
    assert r.json()["error"] == "insufficient_scope"
    for params, field in (
        ({"wait": "61"}, "wait"),
        ({"wait": "-1"}, "wait"),
        ({"wait": "soon"}, "wait"),
        ({"after": "x"}, "after"),
        ({"limit": "0"}, "limit"),
    ):
        r = await http.get(FEED, params=params, headers=headers(world))
        assert r.status_code == 400, params
        assert r.json()["error"] == "invalid_request" and r.json()["field"] == field
    r = await http.get(
        FEED, params={"client_id": "reader", "client_secret": SECRET}, headers=tenant
    )
    assert r.status_code == 400 and "URL" in r.json()["error_description"]
    r = await http.get(FEED + "?after=1&after=2", headers=headers(world))
    assert r.status_code == 400 and "repeated" in r.json()["error_description"]


async def test_failed_authentications_are_limited(world: World) -> None:
    await world.tenant.patch({"rate_limits": {"per_client_per_minute": 2}})
    wrong = {**world.tenant.headers, **basic("reader", "wrong-secret-0123456789")}
    statuses = [(await world.tenant.http.get(FEED, headers=wrong)).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    r = await world.tenant.http.get(FEED, headers=headers(world))
    assert r.status_code == 429  # the same client from the same address


async def test_discovery_names_the_feed(world: World) -> None:
    r = await world.tenant.http.get(
        "/.well-known/openid-configuration", headers=world.tenant.headers
    )
    body = r.json()
    assert body["revocation_events_endpoint"] == world.tenant.issuer + FEED
    assert "none" not in body["revocation_events_endpoint_auth_methods_supported"]


# --- long-poll ---------------------------------------------------------------------------


async def test_a_long_poll_answers_once_a_revocation_is_committed(
    world: World, services: Services
) -> None:
    await revoke(world, "tok0")
    after = (await world.tenant.events())[-1]["id"]
    poll = asyncio.create_task(
        world.tenant.http.get(FEED, params={"after": after, "wait": WAIT}, headers=headers(world))
    )
    await until(lambda: services.notifier.waiting == 1, "the long-poll waits")
    assert not poll.done()
    await revoke(world, "tok1")
    r = await woken(poll)
    assert r.status_code == 200, r.text
    events = r.json()["events"]
    assert len(events) == 1 and int(events[0]["id"]) > int(after)
    assert events == (await world.tenant.events())[-1:]


async def test_a_long_poll_wakes_on_another_instances_revocation(
    world: World, services: Services
) -> None:
    """Another worker process (SQLite: another store on the file, which shares only the
    file and its shared memory) or instance (MongoDB: another client of the database)."""
    assert services.notifier.stamp("acme") is not None  # it waits for a stamp to move
    poll = asyncio.create_task(
        world.tenant.http.get(FEED, params={"after": "0", "wait": WAIT}, headers=headers(world))
    )
    await until(lambda: services.notifier.waiting == 1, "the long-poll waits")
    async with second_instance(services.store) as store, served_by(services, store) as other:
        r = await other.post(
            "/token/revoke", data={"token": "tok3"}, headers={**world.tenant.headers, **world.app}
        )
        assert r.status_code == 200, r.text
        r = await woken(poll)
    assert r.status_code == 200, r.text
    assert [e["type"] for e in r.json()["events"]] == ["revoked"]


@asynccontextmanager
async def served_by(first: Services, store: Any) -> AsyncIterator[httpx.AsyncClient]:
    services = await open_services(first.config, store=store)
    try:
        transport = httpx.ASGITransport(app=create_app(services=services))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
    finally:
        await services.close()


async def test_waiting_readers_do_not_query_the_store(
    world: World, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = services.store
    reads = {"events": 0, "generation": 0}
    list_events, generation = store.list_events, store.events_generation

    async def counted_list_events(*args: Any) -> Any:
        reads["events"] += 1
        return await list_events(*args)

    def counted_generation() -> int | None:
        reads["generation"] += 1
        return generation()

    monkeypatch.setattr(store, "list_events", counted_list_events)
    monkeypatch.setattr(store, "events_generation", counted_generation)
    readers = 20
    polls = [
        asyncio.create_task(
            world.tenant.http.get(FEED, params={"wait": WAIT}, headers=headers(world))
        )
        for _ in range(readers)
    ]
    await until(lambda: services.notifier.waiting == readers, "every reader waits")
    assert reads["events"] == readers  # one read each before waiting
    ticks = reads["generation"]
    await until(lambda: reads["generation"] >= ticks + 20, "the notifier ticks")
    assert reads["events"] == readers, "a waiting reader read the store"
    await revoke(world, "tok0")
    answers = await woken(asyncio.gather(*polls))
    assert all(len(r.json()["events"]) == 1 for r in answers)
    assert reads["events"] == 2 * readers  # and once more each when woken


# --- Server-Sent Events --------------------------------------------------------------------


@asynccontextmanager
async def real_server(app: Starlette) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    """The app on a loopback port (``httpx.ASGITransport`` buffers whole responses), with
    the HTTP protocol ``serve`` uses."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, http=HeaderLimitedProtocol, lifespan="off", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started or task.done(), "the server starts")
        assert server.started
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", server
    finally:
        server.should_exit = True
        async with asyncio.timeout(DEADLINE_S):
            await task
        sock.close()


async def messages(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, str]]:
    """SSE messages as field → value; comments dropped."""
    fields: dict[str, str] = {}
    async for line in lines:
        if not line:
            if fields:
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


async def next_event(stream: AsyncIterator[dict[str, str]]) -> dict[str, str]:
    async with asyncio.timeout(DEADLINE_S):
        async for message in stream:
            if "id" in message:
                return message
    raise AssertionError("the stream ended")


async def test_server_sent_events_wake_and_resume(
    world: World, app: Starlette, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sse, "HEARTBEAT_S", 60.0)  # its re-read must not be what wakes it
    await revoke(world, "tok0")
    accept = headers(world, Accept="text/event-stream")
    async with real_server(app) as (url, _), httpx.AsyncClient(base_url=url) as client:
        async with client.stream("GET", FEED, headers=accept) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            stream = messages(r.aiter_lines())
            first = await next_event(stream)
            assert first["event"] == "revoked"
            assert json.loads(first["data"]) == (await world.tenant.events())[0]
            await until(lambda: services.notifier.waiting == 1, "the stream waits")
            await revoke(world, "tok1")
            second = await next_event(stream)
            assert int(second["id"]) > int(first["id"])
            assert json.loads(second["data"])["id"] == second["id"]
        await revoke(world, "tok2")
        # Resumed where it was: Last-Event-ID wins over after.
        resume = {**accept, "Last-Event-ID": second["id"]}
        async with client.stream("GET", FEED, params={"after": "0"}, headers=resume) as r:
            third = await next_event(messages(r.aiter_lines()))
    assert int(third["id"]) > int(second["id"])
    assert json.loads(third["data"]) == (await world.tenant.events())[-1]


async def test_event_streams_end_when_the_server_shuts_down(
    world: World, app: Starlette, services: Services
) -> None:
    accept = headers(world, Accept="text/event-stream")
    async with real_server(app) as (url, server), httpx.AsyncClient(base_url=url) as client:
        async with client.stream("GET", FEED, headers=accept) as r:
            await until(lambda: services.notifier.waiting == 1, "the stream waits")
            ending = asyncio.create_task(_drain(r.aiter_lines()))
            server.should_exit = True  # what SIGTERM does: uvicorn's graceful shutdown
            async with asyncio.timeout(DEADLINE_S):
                await ending
        assert services.notifier.stopped


async def _drain(lines: AsyncIterator[str]) -> None:
    async for _ in lines:
        pass


async def test_a_long_poll_whose_client_leaves_stops_waiting(
    world: World, app: Starlette, services: Services
) -> None:
    async with real_server(app) as (url, _), httpx.AsyncClient(base_url=url) as client:
        poll = asyncio.create_task(client.get(FEED, params={"wait": WAIT}, headers=headers(world)))
        await until(lambda: services.notifier.waiting == 1, "the long-poll waits")
        poll.cancel()  # the connection closes
        await until(lambda: services.notifier.waiting == 0, "the long-poll ends")
