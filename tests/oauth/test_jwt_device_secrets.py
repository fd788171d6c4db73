"""JWT device secrets (OpenID Connect Native SSO, as Connect2id issues them): a JWT of the
tenant's ``jwt_access_tokens.device_secret_typ``, bound to the session its session claim
names (CONTRACT.md 4.1: "A device secret")."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.support.issuer_keys import HOUR, access_claims, rsa_key
from tests.support.world import World, make_world

KEY = rsa_key()
TYP = "device-secret+jwt"

CREDENTIALS: list[dict[str, Any]] = [
    {"token": "app-rt", "type": "refresh_token", "client_id": "app", "device_session_id": "ds-1"},
    {
        "token": "other-rt",
        "type": "refresh_token",
        "client_id": "other",
        "device_session_id": "ds-1",
    },
    {"token": "app-at", "type": "access_token", "client_id": "app", "device_session_id": "ds-1"},
    {
        "token": "elsewhere-rt",
        "type": "refresh_token",
        "client_id": "app",
        "device_session_id": "ds-2",
    },
]


async def device_world(http: httpx.AsyncClient, **settings: Any) -> World:
    world = await make_world(
        http,
        jwt_access_tokens={"jwks": KEY.jwks(), "device_secret_typ": TYP},
        **settings,
    )
    await world.tenant.register(*CREDENTIALS)
    return world


def device_secret(world: World, session: str | None = "ds-1", **claims: Any) -> str:
    now = int(time.time())
    body = access_claims(world.tenant.issuer, sid=session, exp=now + 30 * 24 * HOUR, **claims)
    body.pop("scope")
    return KEY.sign(body, typ=TYP)


async def test_revoking_a_device_secret_ends_its_session(http: httpx.AsyncClient) -> None:
    world = await device_world(http, revocation={"cascade": "subject"})
    secret = device_secret(world, jti="ds-jti")
    body = await world.tenant.introspect(secret, world.rs)
    assert body["active"] is True
    assert body["token_type"] == "device_secret"
    assert body["jti"] == "ds-jti"
    r = await world.tenant.revoke(secret, auth=world.app)
    assert (r.status_code, r.content) == (200, b"")
    assert not await world.active(secret)
    # Every refresh token of the session, whatever its client; not their access tokens.
    assert not await world.active("app-rt")
    assert not await world.active("other-rt")
    assert await world.active("app-at")
    assert await world.active("elsewhere-rt")
    events = await world.tenant.events()
    assert [e["type"] for e in events] == ["revoked", "session_ended"]
    revoked, ended = events
    assert (revoked["token_type"], revoked["jti"], revoked["count"]) == (
        "device_secret",
        "ds-jti",
        3,  # the device secret itself and the session's two refresh tokens
    )
    assert (revoked["cause"], ended["device_session_id"]) == ("device_secret", "ds-1")
    # Idempotent.
    assert (await world.tenant.revoke(secret, auth=world.app)).status_code == 200
    assert len(await world.tenant.events()) == 2


async def test_a_device_secret_of_an_ended_session_is_inactive(http: httpx.AsyncClient) -> None:
    world = await device_world(http, revocation={"cascade": "spid"})
    secret = device_secret(world)
    # SPID: revoking an access token of the session ends it.
    await world.tenant.register(
        {
            "token": "spid-at",
            "type": "access_token",
            "client_id": "app",
            "device_session_id": "ds-1",
        }
    )
    assert (await world.tenant.revoke("spid-at", auth=world.app)).status_code == 200
    assert not await world.active(secret)
    # Revoking the device secret still takes the session's refresh tokens down.
    assert (await world.tenant.revoke(secret, auth=world.app)).status_code == 200
    revoked = [e for e in await world.tenant.events() if e["type"] == "revoked"]
    assert [(e["token_type"], e["count"]) for e in revoked] == [
        ("access_token", 1),
        ("device_secret", 3),
    ]


async def test_another_sessions_device_secret_stays(http: httpx.AsyncClient) -> None:
    world = await device_world(http)
    one, two = device_secret(world), device_secret(world, "ds-2")
    assert (await world.tenant.revoke(one, auth=world.app)).status_code == 200
    assert await world.active(two)
    assert await world.active("elsewhere-rt")


async def test_a_device_secret_without_a_session_is_revoked_alone(
    http: httpx.AsyncClient,
) -> None:
    world = await device_world(http)
    secret = device_secret(world, None)
    assert (await world.tenant.revoke(secret, auth=world.app)).status_code == 200
    assert not await world.active(secret)
    assert await world.active("app-rt")
    assert [e["type"] for e in await world.tenant.events()] == ["revoked"]


async def test_another_clients_device_secret(http: httpx.AsyncClient) -> None:
    world = await device_world(http)
    secret = device_secret(world)
    assert (await world.tenant.revoke(secret, client_id=world.spa_id)).status_code == 200
    assert (await world.tenant.revoke(secret, auth=world.other)).status_code == 400
    assert await world.active(secret)
    assert await world.active("app-rt")
    assert await world.tenant.events() == []


@pytest.mark.parametrize(
    ("settings", "typ"),
    [
        ({}, TYP),  # the tenant has no JWT device secrets
        ({"device_secret_typ": "other-secret+jwt"}, TYP),
    ],
)
async def test_a_device_secret_typ_the_tenant_does_not_name_is_unknown(
    http: httpx.AsyncClient, settings: dict[str, Any], typ: str
) -> None:
    world = await make_world(http, jwt_access_tokens={"jwks": KEY.jwks(), **settings})
    await world.tenant.register(*CREDENTIALS)
    secret = KEY.sign(access_claims(world.tenant.issuer, sid="ds-1"), typ=typ)
    assert not await world.active(secret)
    assert (await world.tenant.revoke(secret, auth=world.app)).status_code == 200
    assert await world.active("app-rt")
    assert await world.tenant.events() == []


async def test_marks_that_take_a_device_secret(http: httpx.AsyncClient) -> None:
    """As for registered ones: ``token_type_hint=all`` takes the client's device secrets,
    the ``subject`` policy does not."""
    world = await device_world(http, revocation={"cascade": "subject", "allow_revoke_all": True})
    now = int(time.time())
    secret = device_secret(world, "ds-2", iat=now - 600)
    others = device_secret(world, "ds-3", iat=now - 600, client_id="other")
    at = KEY.sign(access_claims(world.tenant.issuer))
    assert (await world.tenant.revoke(at, auth=world.app)).status_code == 200
    assert await world.active(secret)
    r = await world.tenant.revoke("x", auth=world.app, token_type_hint="all")
    assert r.status_code == 200
    assert not await world.active(secret)
    assert await world.active(others)
