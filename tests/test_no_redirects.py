"""No response of the service is a redirect (contract section 7).

A redirect built by the router would take the path below the issuer and the client's
``Host``: ``POST /t/acme/token/revoke/`` went to ``/token/revoke`` outside the tenant,
and ``Host: evil.example`` sent the client to ``http://evil.example/…``. A path with an
extra ``/`` is an unknown path instead: ``404`` JSON, as any other.
"""

from __future__ import annotations

import itertools

import httpx
import pytest
from starlette.routing import Route

from app.routes import routes
from tests.support.world import OPERATOR, World, make_world

ISSUER = "https://auth.example.com/t/acme"
ADMIN_PATHS = (
    "/admin/v1",
    "/admin/v1/tenants",
    "/admin/v1/tenants/acme",
    "/admin/v1/tenants/acme/clients/app",
    "/admin/v1/tenants/acme/events",
)
METHODS = ("GET", "POST", "PUT", "DELETE")


def top_level_paths() -> list[str]:
    """Every route the service wires at its top level, new ones included."""
    return [route.path for route in routes() if isinstance(route, Route)]


@pytest.fixture
async def world(http: httpx.AsyncClient) -> World:
    return await make_world(http, issuer=ISSUER)


def variants(path: str) -> list[str]:
    return [path, path + "/", path + "//", path + "/x/.."]


@pytest.mark.parametrize("method", METHODS)
async def test_no_path_is_redirected(http: httpx.AsyncClient, world: World, method: str) -> None:
    paths = [*top_level_paths(), *ADMIN_PATHS, "", "/.well-known/oauth-authorization-server/t/acme"]
    # The tenant by header, by its issuer URL (https through the trusted proxy), and none.
    forms: list[tuple[str, dict[str, str]]] = [
        ("", {"Tenant-ID": "acme"}),
        ("/t/acme", {"Host": "auth.example.com", "X-Forwarded-Proto": "https"}),
        ("", {}),
    ]
    hosts: list[dict[str, str]] = [
        {},
        {"Host": "evil.example"},
        {"X-Forwarded-Host": "evil.example"},
    ]
    seen = 0
    for path, (prefix, named), host in itertools.product(paths, forms, hosts):
        for url in variants(prefix + path):
            headers = {**OPERATOR, **named, **host}
            r = await http.request(method, url or "/", headers=headers, content=b"token=x")
            assert "location" not in r.headers, (method, url, headers, r.headers)
            assert not 300 <= r.status_code < 400, (method, url, r.status_code)
            seen += 1
    assert seen > 500


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/t/acme/token/revoke/", {"Host": "auth.example.com", "X-Forwarded-Proto": "https"}),
        ("/token/revoke/", {"Tenant-ID": "acme", "Host": "evil.example"}),
        ("/token/introspect/", {"Issuer": ISSUER}),
    ],
)
async def test_a_trailing_slash_is_an_unknown_path(
    http: httpx.AsyncClient, world: World, url: str, headers: dict[str, str]
) -> None:
    await world.tenant.register({"token": "live", "type": "access_token", "client_id": "app"})
    r = await http.post(url, data={"token": "live"}, headers={**headers, **world.app})
    assert r.status_code == 404, r.text
    assert r.json() == {"error": "not_found"}
    assert "location" not in r.headers
    assert await world.active("live")


async def test_admin_paths_with_a_trailing_slash_are_unknown(
    http: httpx.AsyncClient, world: World
) -> None:
    for url in ("/admin/v1/", "/admin/v1/tenants/", "/admin/v1/tenants/acme/"):
        r = await http.get(url, headers={**OPERATOR, "Host": "evil.example"})
        assert r.status_code == 404, (url, r.text)
        assert r.json()["error"] == "not_found"
        assert "location" not in r.headers
