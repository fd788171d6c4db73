"""Authorization server metadata in all three URL forms."""

from __future__ import annotations

import httpx
import pytest

from tests.support.world import OPERATOR, make_tenant

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


async def metadata_with(http: httpx.AsyncClient, auth: dict[str, object]) -> dict[str, object]:
    r = await http.patch("/admin/v1/tenants/acme", json={"auth": auth}, headers=OPERATOR)
    assert r.status_code == 200, r.text
    body: dict[str, object] = (await http.get(f"{ISSUER}/.well-known/openid-configuration")).json()
    return body


@pytest.mark.usefixtures("tenant")
async def test_every_method_and_the_default_algorithms(http: httpx.AsyncClient) -> None:
    body = (await http.get(f"{ISSUER}/.well-known/openid-configuration")).json()
    assert body["revocation_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
        "none",
    ]
    assert body["introspection_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
    ]
    algs = ["RS256", "PS256", "ES256", "EdDSA", "HS256"]
    assert body["revocation_endpoint_auth_signing_alg_values_supported"] == algs
    assert body["introspection_endpoint_auth_signing_alg_values_supported"] == algs


@pytest.mark.usefixtures("tenant")
@pytest.mark.parametrize(
    ("methods", "algs"),
    [
        (["private_key_jwt"], ["RS256", "ES512", "EdDSA"]),
        (["client_secret_jwt", "client_secret_basic"], ["HS256", "HS512"]),
        (["client_secret_basic", "none"], []),
    ],
)
async def test_signing_algorithms_follow_the_allowed_methods(
    http: httpx.AsyncClient, methods: list[str], algs: list[str]
) -> None:
    """An SPID-like tenant (private_key_jwt only) lists its method and its asymmetric
    algorithms; HS* only with client_secret_jwt; none without a JWT method."""
    body = await metadata_with(
        http, {"methods": methods, "assertion_algs": ["RS256", "HS256", "ES512", "EdDSA", "HS512"]}
    )
    order = ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"]
    listed = [m for m in [*order, "none"] if m in methods]
    assert body["revocation_endpoint_auth_methods_supported"] == listed
    assert body["revocation_endpoint_auth_signing_alg_values_supported"] == algs
    assert body["introspection_endpoint_auth_signing_alg_values_supported"] == algs
