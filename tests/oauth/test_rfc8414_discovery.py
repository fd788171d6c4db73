"""Authorization server metadata in all three URL forms."""

from __future__ import annotations

import httpx
import pytest

from tests.support.world import make_tenant

ISSUER = "https://auth.example.com/t/acme"


@pytest.fixture
async def tenant(http: httpx.AsyncClient) -> None:
    await make_tenant(http, "acme", ISSUER)


@pytest.mark.usefixtures("tenant")
@pytest.mark.parametrize(
    ("url", "headers"),
    [
        (f"{ISSUER}/.well-known/openid-configuration", {}),
        (f"{ISSUER}/.well-known/oauth-authorization-server", {}),
        ("https://auth.example.com/.well-known/oauth-authorization-server/t/acme", {}),
        ("http://other.test/.well-known/openid-configuration", {"Tenant-ID": "acme"}),
        ("http://other.test/.well-known/oauth-authorization-server", {"Issuer": ISSUER}),
    ],
)
async def test_metadata(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
    r = await http.get(url, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["issuer"] == ISSUER
    assert body["revocation_endpoint"] == f"{ISSUER}/token/revoke"
    assert body["introspection_endpoint"] == f"{ISSUER}/token/introspect"
    assert {"client_secret_basic", "client_secret_post", "none"} <= set(
        body["revocation_endpoint_auth_methods_supported"]
    )
    assert "none" not in body["introspection_endpoint_auth_methods_supported"]
    assert "revocation_endpoint_auth_signing_alg_values_supported" in body


@pytest.mark.usefixtures("tenant")
async def test_disabled_endpoints_are_left_out(http: httpx.AsyncClient) -> None:
    r = await http.patch(
        "/admin/v1/tenants/acme",
        json={"revocation": {"enabled": False}, "auth": {"methods": ["client_secret_post"]}},
        headers={"Authorization": "Bearer test-operator-key-0123456789"},
    )
    assert r.status_code == 200
    body = (await http.get(f"{ISSUER}/.well-known/openid-configuration")).json()
    assert "revocation_endpoint" not in body
    assert "revocation_endpoint_auth_methods_supported" not in body
    assert body["introspection_endpoint_auth_methods_supported"] == ["client_secret_post"]


@pytest.mark.usefixtures("tenant")
async def test_rfc8414_form_needs_the_whole_issuer_path(http: httpx.AsyncClient) -> None:
    r = await http.get("https://auth.example.com/.well-known/oauth-authorization-server/t")
    assert r.status_code == 404
