"""Type hints, client authentication methods, revoke-all and device secrets."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.support.issuer_keys import ec_key
from tests.support.world import SECRET, World, basic, make_world


@pytest.fixture
async def world(http: httpx.AsyncClient) -> World:
    return await make_world(http)


@pytest.mark.parametrize(
    "hint",
    [
        "access_token",
        "refresh_token",  # the wrong type: the token is still found
        "device_secret",
        "urn:ietf:params:oauth:token-type:access_token",
        "urn:ietf:params:oauth:token-type:refresh_token",
        "no_such_hint",  # ignored
        "",
    ],
)
async def test_hint_only_orders_the_lookup(world: World, hint: str) -> None:
    await world.tenant.register({"token": "at", "type": "access_token", "client_id": "app"})
    r = await world.tenant.revoke("at", auth=world.app, token_type_hint=hint)
    assert r.status_code == 200
    assert not await world.active("at")


async def test_client_secret_post(world: World) -> None:
    await world.tenant.client("poster", secret=SECRET, method="client_secret_post")
    await world.tenant.register({"token": "p", "type": "refresh_token", "client_id": "poster"})
    r = await world.tenant.revoke("p", client_id="poster", client_secret=SECRET)
    assert r.status_code == 200
    assert not await world.active("p")


async def test_client_is_held_to_its_registered_method(world: World) -> None:
    # "app" is registered for client_secret_basic: the right secret in the body fails.
    r = await world.tenant.revoke("x", client_id="app", client_secret=SECRET)
    assert r.status_code == 401


async def test_the_registered_method_decides(world: World) -> None:
    """The mechanism gives candidates; a client registered for another method is refused,
    whatever it presents (Basic is still answered with WWW-Authenticate)."""
    jwks = ec_key("k").jwks()
    await world.tenant.client("pk", secret=None, method="private_key_jwt", jwks=jwks)
    r = await world.tenant.revoke("x", auth=basic("pk", SECRET))
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Basic realm=")
    r = await world.tenant.revoke("x", client_id="pk", client_secret=SECRET)
    assert r.status_code == 401
    assert "www-authenticate" not in r.headers
    # A public client that sends a secret is not a public client.
    assert (
        await world.tenant.revoke("x", client_id="spa", client_secret=SECRET)
    ).status_code == 401
    # A confidential client that sends only its id is not authenticated.
    assert (await world.tenant.revoke("x", client_id="app")).status_code == 401


async def test_method_switched_off_for_the_tenant(world: World) -> None:
    await world.tenant.patch({"auth": {"methods": ["client_secret_post", "none"]}})
    r = await world.tenant.revoke("x", auth=world.app)
    assert r.status_code == 401
    assert "www-authenticate" in r.headers


async def test_two_methods_in_one_request_are_invalid_request(world: World) -> None:
    r = await world.tenant.revoke("x", auth=world.app, client_id="app", client_secret=SECRET)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"


async def test_body_client_id_beside_basic(world: World) -> None:
    await world.tenant.register({"token": "t", "type": "access_token", "client_id": "app"})
    r = await world.tenant.revoke("t", auth=world.app, client_id="other")
    assert r.status_code == 400
    assert await world.active("t")
    r = await world.tenant.revoke("t", auth=world.app, client_id="app")
    assert r.status_code == 200
    assert not await world.active("t")


async def test_basic_credentials_are_form_urlencoded_before_base64(world: World) -> None:
    client_id = "https://rp.example.it/app?x=1&y=2"
    secret = "p@ss:w+rd/%20 é"
    await world.tenant.client(client_id, secret=secret)
    await world.tenant.register({"token": "u", "type": "access_token", "client_id": client_id})
    r = await world.tenant.revoke("u", auth=basic(client_id, secret))
    assert r.status_code == 200
    assert not await world.active("u")


@pytest.mark.parametrize(
    "header", ["Basic !!!notbase64", "Basic " + base64.b64encode(b"nocolon").decode(), "Bearer abc"]
)
async def test_malformed_authorization_headers(world: World, header: str) -> None:
    r = await world.tenant.revoke("x", auth={"Authorization": header})
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"


async def test_disabled_client_cannot_authenticate(world: World) -> None:
    await world.tenant.client("app", secret=SECRET, enabled=False)
    r = await world.tenant.revoke("x", auth=world.app)
    assert r.status_code == 401


async def test_revoke_all_takes_every_credential_of_the_client(world: World) -> None:
    t = world.tenant
    await t.patch({"revocation": {"allow_revoke_all": True}})
    await t.register(
        {"token": "a1", "type": "access_token", "client_id": "app", "sub": "u1"},
        {"token": "r1", "type": "refresh_token", "client_id": "app", "sub": "u2"},
        {"token": "d1", "type": "device_secret", "client_id": "app", "device_session_id": "s"},
        {"token": "o1", "type": "access_token", "client_id": "other", "sub": "u1"},
    )
    r = await t.revoke("whatever", auth=world.app, token_type_hint="all")
    assert r.status_code == 200
    assert [await world.active(x) for x in ("a1", "r1", "d1", "o1")] == [False, False, False, True]
    (event,) = await t.events()
    assert (event["cause"], event["count"], event["client_id"]) == ("all", 3, "app")


async def test_public_client_may_revoke_all_where_it_may_revoke(world: World) -> None:
    t = world.tenant
    await t.patch({"revocation": {"allow_revoke_all": True}})
    await t.register({"token": "s1", "type": "refresh_token", "client_id": "spa"})
    assert (await t.revoke("", client_id="spa", token_type_hint="all")).status_code == 400
    assert (await t.revoke("x", client_id="spa", token_type_hint="all")).status_code == 200
    assert not await world.active("s1")


async def test_device_secret_ends_its_session_for_every_client(world: World) -> None:
    t = world.tenant
    await t.patch({"revocation": {"cascade": "token"}})
    await t.register(
        {
            "token": "ds",
            "type": "device_secret",
            "client_id": "app",
            "device_session_id": "dev-1",
            "sub": "u",
        },
        {
            "token": "rt-app",
            "type": "refresh_token",
            "client_id": "app",
            "device_session_id": "dev-1",
            "sub": "u",
        },
        {
            "token": "rt-other",
            "type": "refresh_token",
            "client_id": "other",
            "device_session_id": "dev-1",
            "sub": "u",
        },
        {
            "token": "at-other",
            "type": "access_token",
            "client_id": "other",
            "device_session_id": "dev-1",
            "sub": "u",
        },
        {
            "token": "rt-elsewhere",
            "type": "refresh_token",
            "client_id": "other",
            "device_session_id": "dev-2",
            "sub": "u",
        },
    )
    r = await t.revoke("ds", auth=world.app, token_type_hint="device_secret")
    assert r.status_code == 200
    state = {
        x: await world.active(x) for x in ("ds", "rt-app", "rt-other", "at-other", "rt-elsewhere")
    }
    assert state == {
        "ds": False,
        "rt-app": False,
        "rt-other": False,
        "at-other": True,
        "rt-elsewhere": True,
    }
    types = sorted(e["type"] for e in await t.events())
    assert types == ["revoked", "session_ended"]
    revoked = next(e for e in await t.events() if e["type"] == "revoked")
    assert revoked["count"] == 3
    # A refresh token registered later for the ended session is never active.
    await t.register(
        {
            "token": "rt-late",
            "type": "refresh_token",
            "client_id": "app",
            "device_session_id": "dev-1",
        }
    )
    assert not await world.active("rt-late")
