"""Tenant resolution: Issuer and Tenant-ID headers, issuer URLs (path and host forms)."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from tests.support.world import SECRET, basic, make_tenant

AUTH = basic("app", SECRET)


@pytest.fixture
async def tenants(http: httpx.AsyncClient) -> None:
    for tenant_id, issuer in (
        ("acme", "https://auth.example.com/t/acme"),
        ("acme2", "https://auth.example.com/t/acme2"),
        ("nested", "https://auth.example.com/t/acme/eu"),
        ("hosted", "https://hosted.example.org"),
    ):
        t = await make_tenant(
            http, tenant_id, issuer, issuer_aliases=[f"https://alias.example.net/{tenant_id}"]
        )
        await t.client("app", secret=SECRET)
        await t.register({"token": f"tok-{tenant_id}", "type": "access_token", "client_id": "app"})


async def _revoke_is_seen_by(http: httpx.AsyncClient, tenant_id: str) -> bool:
    """Whether tok-<tenant_id> was revoked (checked through the admin events feed)."""
    r = await http.get(
        f"/admin/v1/tenants/{tenant_id}/events",
        headers={"Authorization": "Bearer test-operator-key-0123456789"},
    )
    return any(e["type"] == "revoked" for e in r.json()["events"])


async def _post(http: httpx.AsyncClient, url: str, token: str, **headers: str) -> httpx.Response:
    return await http.post(url, data={"token": token}, headers={**AUTH, **headers})


@pytest.mark.usefixtures("tenants")
@pytest.mark.parametrize(
    ("url", "headers", "tenant_id"),
    [
        ("https://auth.example.com/t/acme/token/revoke", {}, "acme"),
        (
            "https://auth.example.com/t/acme2/token/revoke",
            {},
            "acme2",
        ),  # /t/acme is no prefix of it
        ("https://auth.example.com/t/acme/eu/token/revoke", {}, "nested"),  # longest prefix wins
        ("https://hosted.example.org/token/revoke", {}, "hosted"),  # host form
        ("HTTPS://Hosted.Example.ORG:443/token/revoke", {}, "hosted"),
        ("http://anything.test/token/revoke", {"Tenant-ID": "acme2"}, "acme2"),
        (
            "http://anything.test/token/revoke",
            {"Issuer": "https://auth.example.com/t/acme/"},
            "acme",
        ),
        (
            "http://anything.test/token/revoke",
            {"Issuer": "https://AUTH.example.com:443/t/acme"},
            "acme",
        ),
        (
            "http://anything.test/token/revoke",
            {"Issuer": "https://alias.example.net/nested"},
            "nested",
        ),
        # Header and URL naming the same tenant are fine.
        ("https://auth.example.com/t/acme/token/revoke", {"Tenant-ID": "acme"}, "acme"),
    ],
)
async def test_tenant_is_resolved(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], tenant_id: str
) -> None:
    r = await _post(http, url, f"tok-{tenant_id}", **headers)
    assert r.status_code == 200, r.text
    assert await _revoke_is_seen_by(http, tenant_id)


@pytest.mark.usefixtures("tenants")
@pytest.mark.parametrize(
    ("url", "headers", "status"),
    [
        ("http://anything.test/token/revoke", {"Tenant-ID": "nope"}, 400),
        ("http://anything.test/token/revoke", {"Tenant-ID": "NOT VALID"}, 400),
        ("http://anything.test/token/revoke", {"Issuer": "https://unknown.example/"}, 400),
        ("http://anything.test/token/revoke", {"Issuer": "not a url"}, 400),
        (
            "http://anything.test/token/revoke",
            {"Issuer": "https://auth.example.com/t/acme", "Tenant-ID": "acme2"},
            400,
        ),
        ("https://auth.example.com/t/acme/token/revoke", {"Tenant-ID": "acme2"}, 400),
        ("http://anything.test/token/revoke", {}, 404),
        ("https://auth.example.com/t/unknown/token/revoke", {}, 404),
        ("https://auth.example.com/t/acme/no-such-endpoint", {}, 404),
    ],
)
async def test_conflicts_unknowns_and_misses(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], status: int
) -> None:
    r = await _post(http, url, "tok-acme", **headers)
    assert r.status_code == status, r.text
    if status == 400:
        assert r.json()["error"] == "invalid_request"
    assert not await _revoke_is_seen_by(http, "acme")
    assert not await _revoke_is_seen_by(http, "acme2")


@pytest.mark.usefixtures("tenants")
async def test_disabled_tenant_is_404_everywhere(http: httpx.AsyncClient) -> None:
    r = await http.patch(
        "/admin/v1/tenants/acme",
        json={"enabled": False},
        headers={"Authorization": "Bearer test-operator-key-0123456789"},
    )
    assert r.status_code == 200
    for url, headers in (
        ("https://auth.example.com/t/acme/token/revoke", {}),
        ("http://x.test/token/revoke", {"Tenant-ID": "acme"}),
    ):
        assert (await _post(http, url, "tok-acme", **headers)).status_code == 404
    for url in (
        "https://auth.example.com/t/acme/.well-known/openid-configuration",
        "https://auth.example.com/.well-known/oauth-authorization-server/t/acme",
    ):
        assert (await http.get(url)).status_code == 404
    assert not await _revoke_is_seen_by(http, "acme")


@pytest.mark.usefixtures("tenants")
async def test_forwarded_headers_count_only_from_trusted_proxies(app: Starlette) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hosted.example.org"}
    # httpx's ASGI transport reports the client as 127.0.0.1 (a trusted proxy by default).
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://internal:8000"
    ) as trusted:
        r = await _post(trusted, "http://internal:8000/token/revoke", "tok-hosted", **forwarded)
        assert r.status_code == 200
    untrusted_transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 5555))
    async with httpx.AsyncClient(
        transport=untrusted_transport, base_url="http://internal:8000"
    ) as untrusted:
        r = await _post(untrusted, "http://internal:8000/token/revoke", "tok-hosted", **forwarded)
        assert r.status_code == 404


@pytest.mark.usefixtures("tenants")
async def test_operator_routes_are_not_tenant_routes(http: httpx.AsyncClient) -> None:
    assert (await http.get("https://hosted.example.org/healthz")).status_code == 200
