"""POST /token/introspect (RFC 7662) for registered tokens."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.world import World, basic, make_world


@pytest.fixture
async def world(http: httpx.AsyncClient) -> World:
    return await make_world(http)


async def test_active_token_fields(world: World) -> None:
    now = int(time.time())
    await world.tenant.register(
        {
            "token": "at",
            "type": "access_token",
            "client_id": "app",
            "sub": "alice",
            "scope": "openid email",
            "grant_id": "g1",
            "exp": now + 600,
            "iat": now,
        },
        {"token": "rt", "type": "refresh_token", "client_id": "app", "sub": "alice"},
        {"token": "ds", "type": "device_secret", "client_id": "app", "device_session_id": "s1"},
    )
    body = await world.tenant.introspect("at", world.rs)
    assert body == {
        "active": True,
        "token_type": "Bearer",
        "client_id": "app",
        "sub": "alice",
        "scope": "openid email",
        "exp": now + 600,
        "iat": now,
        "iss": "https://auth.example.com/t/acme",
        "grant_id": "g1",
    }
    assert (await world.tenant.introspect("rt", world.rs))["token_type"] == "refresh_token"
    assert (await world.tenant.introspect("ds", world.rs))["token_type"] == "device_secret"


async def test_inactive_answers_say_nothing_more(world: World, http: httpx.AsyncClient) -> None:
    now = int(time.time())
    other = await make_world(http, "beta")
    await other.tenant.register({"token": "beta-tok", "type": "access_token", "client_id": "app"})
    await world.tenant.register(
        {
            "token": "old",
            "type": "access_token",
            "client_id": "app",
            "exp": now - 1,
            "iat": now - 60,
        },
        {"token": "gone", "type": "access_token", "client_id": "app"},
    )
    await world.tenant.revoke("gone", auth=world.app)
    for token in ("old", "gone", "unknown", "beta-tok", "\u2603..."):
        assert await world.tenant.introspect(token, world.rs) == {"active": False}, token


async def test_caller_needs_the_introspect_scope(world: World) -> None:
    r = await world.tenant.http.post(
        "/token/introspect", data={"token": "x"}, headers={**world.tenant.headers, **world.app}
    )
    assert r.status_code == 403
    assert r.json()["error"] == "insufficient_scope"


async def test_public_clients_and_bad_credentials_are_401(world: World) -> None:
    await world.tenant.client("pub-rs", type="public", scope="introspect")
    for form, auth in (({"client_id": "pub-rs"}, {}), ({}, basic("rs", "wrong")), ({}, {})):
        r = await world.tenant.http.post(
            "/token/introspect",
            data={"token": "x", **form},
            headers={**world.tenant.headers, **auth},
        )
        assert r.status_code == 401
        assert r.json()["error"] == "invalid_client"


async def test_introspection_switched_off(world: World) -> None:
    await world.tenant.patch({"introspection": {"enabled": False}})
    r = await world.tenant.http.post(
        "/token/introspect", data={"token": "x"}, headers={**world.tenant.headers, **world.rs}
    )
    assert r.status_code == 404


async def test_bad_body_is_invalid_request(world: World) -> None:
    r = await world.tenant.http.post(
        "/token/introspect", json={"token": "x"}, headers={**world.tenant.headers, **world.rs}
    )
    assert r.status_code == 400
