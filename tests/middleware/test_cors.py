"""CORS per tenant (``cors.allowed_origins``): preflights, actual requests, errors,
tenant isolation, and the paths CORS never applies to."""

from __future__ import annotations

from typing import Any, NoReturn

import httpx
import pytest

from app.errors import StoreUnavailable
from app.services import Services
from tests.support.world import OPERATOR, SECRET, World, basic, make_tenant, make_world

APP = "https://app.example"
EVIL = "https://evil.example"
ISSUER = "https://auth.example.com/t/acme"
REVOKE_URL = f"{ISSUER}/token/revoke"


@pytest.fixture
async def world(http: httpx.AsyncClient) -> World:
    """acme, issuer-URL tenant, allowing APP (listed in another spelling of its normal
    form); bare, with CORS off."""
    world = await make_world(http, "acme", cors={"allowed_origins": ["https://App.Example:443"]})
    await world.tenant.register({"token": "at-1", "type": "access_token", "client_id": "app"})
    bare = await make_tenant(http, "bare")
    await bare.client("app", secret=SECRET)
    return world


def cors_headers(r: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.startswith("access-control-")}


def preflight_headers(origin: str, method: str = "POST", **headers: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
        **headers,
    }


def assert_allowed(r: httpx.Response, origin: str = APP) -> None:
    assert r.headers["access-control-allow-origin"] == origin
    assert "origin" in r.headers["vary"].lower()
    exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
    assert exposed == {"www-authenticate", "retry-after", "x-request-id"}
    assert "access-control-allow-credentials" not in r.headers


async def assert_untouched(world: World) -> None:
    assert await world.active("at-1")
    assert await world.tenant.events() == []


# --- preflight -------------------------------------------------------------------------


async def test_preflight_from_an_allowed_origin_is_answered_here(
    http: httpx.AsyncClient, world: World
) -> None:
    r = await http.options(REVOKE_URL, headers=preflight_headers(APP))
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert r.headers["access-control-allow-origin"] == APP
    assert r.headers["access-control-allow-methods"] == "POST"
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert allowed == {"authorization", "content-type"}
    assert int(r.headers["access-control-max-age"]) > 0
    assert r.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in r.headers

    r = await http.options(f"{ISSUER}/token/introspect", headers=preflight_headers(APP))
    assert (r.status_code, r.headers["access-control-allow-methods"]) == (204, "POST")
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        r = await http.options(f"{ISSUER}{path}", headers=preflight_headers(APP, "GET"))
        assert (r.status_code, r.headers["access-control-allow-methods"]) == (204, "GET")
    r = await http.options(
        "https://auth.example.com/.well-known/oauth-authorization-server/t/acme",
        headers=preflight_headers(APP, "GET"),
    )
    assert (r.status_code, r.headers["access-control-allow-methods"]) == (204, "GET")


async def test_origins_compare_in_their_normal_form_and_are_echoed_as_sent(
    http: httpx.AsyncClient, world: World
) -> None:
    for sent in ("https://APP.example", "https://app.example:443"):
        r = await http.options(REVOKE_URL, headers=preflight_headers(sent))
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == sent
    for other in ("http://app.example", "https://app.example:8443", "https://x.app.example"):
        r = await http.options(REVOKE_URL, headers=preflight_headers(other))
        assert r.status_code == 403, other


@pytest.mark.parametrize(
    "origin", [EVIL, "null", "https://app.example.evil.example", "app.example", ""]
)
async def test_preflight_from_another_origin_is_refused_without_cors_headers(
    http: httpx.AsyncClient, world: World, origin: str
) -> None:
    r = await http.options(REVOKE_URL, headers=preflight_headers(origin))
    assert r.status_code == 403
    assert r.json()["error"] == "forbidden"
    assert cors_headers(r) == {}


async def test_preflight_at_a_tenant_without_cors_is_refused(
    http: httpx.AsyncClient, world: World
) -> None:
    r = await http.options("/token/revoke", headers=preflight_headers(APP, **{"Tenant-ID": "bare"}))
    assert r.status_code == 403
    assert cors_headers(r) == {}


async def test_preflight_needs_no_authentication_and_reaches_no_endpoint_or_store(
    http: httpx.AsyncClient, world: World, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    def touched(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError("a preflight touched the store")

    with monkeypatch.context() as m:
        for name in ("find_credential", "get_client", "apply_revocation"):
            m.setattr(services.store, name, touched)
        r = await http.request(
            "OPTIONS",
            REVOKE_URL,
            headers={**preflight_headers(APP), "Content-Type": "application/x-www-form-urlencoded"},
            content=b"token=at-1&client_id=spa",
        )
        assert r.status_code == 204
        r = await http.options(REVOKE_URL, headers=preflight_headers(EVIL))
        assert r.status_code == 403
    await assert_untouched(world)


async def test_options_without_a_request_method_is_no_preflight(
    http: httpx.AsyncClient, world: World
) -> None:
    r = await http.options(REVOKE_URL, headers={"Origin": APP})
    assert r.status_code == 405
    assert_allowed(r)


# --- actual requests -------------------------------------------------------------------


async def test_a_request_from_an_allowed_origin_carries_the_headers(
    http: httpx.AsyncClient, world: World
) -> None:
    r = await http.post(REVOKE_URL, data={"token": "at-1"}, headers={**world.app, "Origin": APP})
    assert r.status_code == 200
    assert_allowed(r)
    assert not await world.active("at-1")

    r = await http.get(f"{ISSUER}/.well-known/openid-configuration", headers={"Origin": APP})
    assert r.status_code == 200
    assert_allowed(r)


async def test_a_request_from_another_origin_or_none_gets_vary_but_no_cors_headers(
    http: httpx.AsyncClient, world: World
) -> None:
    for headers in ({"Origin": EVIL}, {"Origin": "null"}, {}):
        r = await http.get(f"{ISSUER}/.well-known/openid-configuration", headers=headers)
        assert r.status_code == 200
        assert cors_headers(r) == {}, headers
        assert r.headers["vary"] == "Origin"
    r = await http.post(REVOKE_URL, data={"token": "at-1"}, headers={**world.app, "Origin": EVIL})
    assert r.status_code == 200
    assert cors_headers(r) == {}


async def test_errors_from_an_allowed_origin_carry_the_headers(
    http: httpx.AsyncClient, world: World, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin = {"Origin": APP}
    r = await http.post(REVOKE_URL, data={"token": "at-1"}, headers=origin)
    assert r.status_code == 401
    assert_allowed(r)
    r = await http.post(REVOKE_URL, data={"token": "at-1"}, headers={**basic("app", "x"), **origin})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Basic")
    assert_allowed(r)
    r = await http.post(REVOKE_URL, data={}, headers={**world.app, **origin})
    assert r.status_code == 400
    assert_allowed(r)
    r = await http.get(f"{ISSUER}/no-such-path", headers=origin)
    assert r.status_code == 404
    assert_allowed(r)

    async def down(*args: Any, **kwargs: Any) -> NoReturn:
        raise StoreUnavailable("connection refused")

    with monkeypatch.context() as m:
        m.setattr(services.store, "find_credential", down)
        r = await http.post(REVOKE_URL, data={"token": "at-1"}, headers={**world.app, **origin})
    assert r.status_code == 503
    assert r.headers["retry-after"]
    assert_allowed(r)

    await world.tenant.patch({"revocation": {"enabled": False}})
    r = await http.post(REVOKE_URL, data={"token": "at-1"}, headers={**world.app, **origin})
    assert r.status_code == 404
    assert_allowed(r)


async def test_tenants_named_by_header_use_their_own_origins(
    http: httpx.AsyncClient, world: World
) -> None:
    for name, value in (("Tenant-ID", "acme"), ("Issuer", ISSUER)):
        headers = {**world.app, name: value, "Origin": APP}
        r = await http.post("http://other.test/token/revoke", data={"token": "x"}, headers=headers)
        assert r.status_code == 200
        assert_allowed(r)
        r = await http.options(
            "http://other.test/token/revoke", headers=preflight_headers(APP, **{name: value})
        )
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == APP


async def test_one_tenants_origins_never_apply_to_another(
    http: httpx.AsyncClient, world: World
) -> None:
    other = await make_tenant(
        http, "other", "https://other.example.com", cors={"allowed_origins": [EVIL]}
    )
    await other.client("app", secret=SECRET)
    auth = basic("app", SECRET)
    r = await http.post(
        "https://other.example.com/token/revoke",
        data={"token": "x"},
        headers={**auth, "Origin": APP},
    )
    assert r.status_code == 200
    assert cors_headers(r) == {}
    r = await http.options(REVOKE_URL, headers=preflight_headers(EVIL))
    assert r.status_code == 403
    r = await http.post(
        "/token/revoke", data={"token": "x"}, headers={**auth, "Tenant-ID": "bare", "Origin": APP}
    )
    assert r.status_code == 200
    assert cors_headers(r) == {}
    assert "vary" not in r.headers  # CORS off: the response is as it was without it


async def test_operator_paths_never_get_cors_headers(http: httpx.AsyncClient, world: World) -> None:
    await make_tenant(http, "root", "https://root.example", cors={"allowed_origins": ["*"]})
    origin = {"Origin": APP}
    for url in (
        "/admin/v1/tenants",
        f"{ISSUER}/admin/v1/tenants",
        "https://root.example/admin/v1/tenants",
        "/healthz",
        f"{ISSUER}/healthz",
        "/readyz",
        "/metrics",
    ):
        r = await http.get(url, headers={**OPERATOR, **origin, "Tenant-ID": "acme"})
        assert cors_headers(r) == {}, url
        r = await http.options(url, headers=preflight_headers(APP, "GET", **OPERATOR))
        assert cors_headers(r) == {}, url
        assert r.status_code != 204, url


async def test_a_changed_setting_applies_to_the_next_request(
    http: httpx.AsyncClient, world: World
) -> None:
    url = f"{ISSUER}/.well-known/openid-configuration"
    assert cors_headers(await http.get(url, headers={"Origin": EVIL})) == {}
    await world.tenant.patch({"cors": {"allowed_origins": [EVIL]}})
    assert_allowed(await http.get(url, headers={"Origin": EVIL}), EVIL)
    assert cors_headers(await http.get(url, headers={"Origin": APP})) == {}
    await world.tenant.patch({"cors": {"allowed_origins": None}})
    r = await http.options(url, headers=preflight_headers(EVIL, "GET"))
    assert r.status_code == 403
    r = await http.get(url, headers={"Origin": EVIL})
    assert cors_headers(r) == {}
    assert "vary" not in r.headers


async def test_any_origin_is_echoed_never_with_credentials(
    http: httpx.AsyncClient, world: World
) -> None:
    await world.tenant.patch({"cors": {"allowed_origins": ["*"]}})
    for origin in (EVIL, "http://localhost:3000"):
        r = await http.options(REVOKE_URL, headers=preflight_headers(origin))
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == origin
        assert "access-control-allow-credentials" not in r.headers
        r = await http.post(
            REVOKE_URL, data={"token": "x"}, headers={**world.app, "Origin": origin}
        )
        assert_allowed(r, origin)
    r = await http.options(REVOKE_URL, headers=preflight_headers("null"))
    assert r.status_code == 403


async def test_a_repeated_origin_header_is_no_allowed_origin(
    http: httpx.AsyncClient, world: World
) -> None:
    r = await http.get(
        f"{ISSUER}/.well-known/openid-configuration",
        headers=[("Origin", APP), ("Origin", APP)],
    )
    assert r.status_code == 200
    assert cors_headers(r) == {}
