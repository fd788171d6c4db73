"""Every row of the contract's outcome table for POST /token/revoke (but 429)."""

from __future__ import annotations

import time

import httpx
import pytest

from app.errors import StoreUnavailable
from app.services import Services
from tests.support.world import SECRET, World, basic, make_world


@pytest.fixture
async def world(http: httpx.AsyncClient) -> World:
    return await make_world(http)


async def test_live_token_is_revoked_and_introspection_sees_it(world: World) -> None:
    await world.tenant.register({"token": "at-1", "type": "access_token", "client_id": "app"})
    assert await world.active("at-1")
    r = await world.tenant.revoke("at-1", auth=world.app)
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["cache-control"] == "no-store"
    assert not await world.active("at-1")


async def test_already_revoked_expired_unknown_and_malformed_tokens_answer_200(
    world: World,
) -> None:
    now = int(time.time())
    await world.tenant.register(
        {"token": "at-1", "type": "access_token", "client_id": "app"},
        {
            "token": "old",
            "type": "access_token",
            "client_id": "app",
            "exp": now - 10,
            "iat": now - 100,
        },
    )
    assert (await world.tenant.revoke("at-1", auth=world.app)).status_code == 200
    for token in ("at-1", "old", "never-issued", "%%%\u00e9\u2603 not a token", "a.b.c"):
        r = await world.tenant.revoke(token, auth=world.app)
        assert (r.status_code, r.content) == (200, b""), token
    events = await world.tenant.events()
    assert [e["type"] for e in events] == ["revoked"]


async def test_public_client_gets_silent_200_for_another_clients_token(world: World) -> None:
    await world.tenant.register({"token": "at-app", "type": "access_token", "client_id": "app"})
    r = await world.tenant.revoke("at-app", client_id="spa")
    assert (r.status_code, r.content) == (200, b"")
    assert await world.active("at-app")
    assert await world.tenant.events() == []


async def test_confidential_client_is_refused_another_clients_token(world: World) -> None:
    await world.tenant.register({"token": "at-app", "type": "access_token", "client_id": "app"})
    r = await world.tenant.revoke("at-app", auth=world.other)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    assert await world.active("at-app")


async def test_another_clients_token_with_right_and_scope(world: World) -> None:
    t = world.tenant
    await t.client("admin-app", secret=SECRET, scope="revoke_any_token")
    await t.register({"token": "at-app", "type": "access_token", "client_id": "app"})
    # The scope alone is not enough: the tenant must allow it.
    r = await t.revoke("at-app", auth=basic("admin-app", SECRET))
    assert r.status_code == 400
    assert await world.active("at-app")
    await t.patch({"revocation": {"allow_revoke_other_clients": True}})
    # The setting alone is not enough either: the caller needs the scope.
    assert (await t.revoke("at-app", auth=world.other)).status_code == 400
    r = await t.revoke("at-app", auth=basic("admin-app", SECRET))
    assert r.status_code == 200
    assert not await world.active("at-app")


@pytest.mark.parametrize("token", [None, ""])
async def test_missing_or_empty_token(world: World, token: str | None) -> None:
    r = await world.tenant.revoke(token, auth=world.app, other="x")
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    assert "token" in r.json()["error_description"]


async def _raw(
    world: World, body: bytes, content_type: str, auth: dict[str, str]
) -> httpx.Response:
    return await world.tenant.http.post(
        "/token/revoke",
        content=body,
        headers={**world.tenant.headers, **auth, "Content-Type": content_type},
    )


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"token=a&token=b", "application/x-www-form-urlencoded"),
        (b"token=a&token_type_hint=x&token_type_hint=y", "application/x-www-form-urlencoded"),
        (b'{"token": "a"}', "application/json"),
        (b"token=a", "text/plain"),
        (b"token=\xff\xfe", "application/x-www-form-urlencoded"),
        (b"token=%FF%FE", "application/x-www-form-urlencoded"),
        (b"token=a", "application/x-www-form-urlencoded; charset=iso-8859-1"),
    ],
)
async def test_bad_bodies_are_invalid_request_and_change_nothing(
    world: World, body: bytes, content_type: str
) -> None:
    await world.tenant.register({"token": "a", "type": "access_token", "client_id": "app"})
    r = await _raw(world, body, content_type, world.app)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"
    assert r.json()["error_description"]
    assert await world.active("a")


async def test_charset_parameter_is_allowed(world: World) -> None:
    await world.tenant.register({"token": "a", "type": "access_token", "client_id": "app"})
    r = await _raw(world, b"token=a", "application/x-www-form-urlencoded; charset=UTF-8", world.app)
    assert r.status_code == 200
    assert not await world.active("a")


async def test_other_parameters_are_ignored(world: World) -> None:
    await world.tenant.register({"token": "a", "type": "access_token", "client_id": "app"})
    r = await world.tenant.revoke("a", auth=world.app, foo="bar", scope="x")
    assert r.status_code == 200
    assert not await world.active("a")


async def test_body_over_16_kib_is_413(world: World) -> None:
    r = await _raw(
        world, b"token=" + b"a" * (16 * 1024), "application/x-www-form-urlencoded", world.app
    )
    assert r.status_code == 413
    assert r.json()["error"] == "invalid_request"


async def test_body_over_limit_without_content_length_is_413(world: World) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"a" * 1024

    r = await world.tenant.http.post(
        "/token/revoke",
        content=chunks(),
        headers={
            **world.tenant.headers,
            **world.app,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert r.status_code == 413


async def test_failed_basic_authentication(world: World) -> None:
    await world.tenant.register({"token": "a", "type": "access_token", "client_id": "app"})
    r = await world.tenant.revoke("a", auth=basic("app", "wrong"))
    assert r.status_code == 401
    body = r.json()
    assert body["error"] == "invalid_client"
    assert body["error_description"]
    assert len(body["client_auth_id"]) >= 12
    assert r.headers["www-authenticate"].startswith("Basic realm=")
    assert await world.active("a")


@pytest.mark.parametrize(
    "form",
    [
        {},  # no authentication at all
        {"client_id": "app", "client_secret": "wrong"},
        {"client_id": "nobody", "client_secret": SECRET},
        {"client_id": "app", "client_secret": ""},
        {"client_id": "nobody"},
        {"client_id": "app"},  # a confidential client cannot act as public
    ],
)
async def test_failed_authentication_without_basic(world: World, form: dict[str, str]) -> None:
    r = await world.tenant.revoke("a", **form)
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert "client_auth_id" in r.json()
    assert "www-authenticate" not in r.headers


async def test_public_clients_may_be_forbidden_to_revoke(world: World) -> None:
    await world.tenant.register({"token": "s", "type": "access_token", "client_id": "spa"})
    await world.tenant.patch({"revocation": {"public_clients_may_revoke": False}})
    r = await world.tenant.revoke("s", client_id="spa")
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert await world.active("s")
    await world.tenant.patch({"revocation": {"public_clients_may_revoke": None}})
    assert (await world.tenant.revoke("s", client_id="spa")).status_code == 200
    assert not await world.active("s")


async def test_hint_all_needs_the_tenant_setting(world: World) -> None:
    await world.tenant.register({"token": "a", "type": "access_token", "client_id": "app"})
    r = await world.tenant.revoke("a", auth=world.app, token_type_hint="all")
    assert r.status_code == 400
    assert r.json() == {"error": "unsupported_token_type"}
    assert await world.active("a")


async def test_endpoint_switched_off_is_404(world: World) -> None:
    await world.tenant.register({"token": "a", "type": "access_token", "client_id": "app"})
    await world.tenant.patch({"revocation": {"enabled": False}})
    r = await world.tenant.revoke("a", auth=world.app)
    assert r.status_code == 404
    assert await world.active("a")


async def test_store_unreachable_is_503_with_retry_after(
    world: World, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(*args: object) -> None:
        raise StoreUnavailable("connection refused")

    monkeypatch.setattr(services.store, "find_credential", down)
    r = await world.tenant.revoke("a", auth=world.app)
    assert r.status_code == 503
    assert r.json() == {"error": "temporarily_unavailable"}
    assert int(r.headers["retry-after"]) > 0


async def test_any_other_failure_is_500_without_a_stack_trace(
    world: World, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object) -> None:
        raise RuntimeError("internal detail at /srv/app.py line 3")

    monkeypatch.setattr(services.store, "find_credential", broken)
    r = await world.tenant.revoke("a", auth=world.app)
    assert r.status_code == 500
    assert r.json() == {"error": "server_error"}
    assert "detail" not in r.text and "Traceback" not in r.text


async def test_get_is_not_allowed(world: World) -> None:
    r = await world.tenant.http.get("/token/revoke", headers=world.tenant.headers)
    assert r.status_code == 405
