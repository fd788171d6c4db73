"""Clients: register, replace, read, list, delete; secrets; percent-encoded ids."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import jwt
import pytest

from app.services import Services
from tests.admin.conftest import put_client, tenant_url
from tests.support.issuer_keys import ec_key

RP = "https://rp.example.it/app?x=1"
RP_KEY = ec_key("rp-2026")
JWKS = RP_KEY.jwks()
PRIVATE_JWK = {
    **RP_KEY.jwk(),
    "kid": "leaked",
    "d": jwt.algorithms.ECAlgorithm.to_jwk(RP_KEY.private, as_dict=True)["d"],
}


def client_url(tenant_id: str, client_id: str) -> str:
    return tenant_url(tenant_id, f"/clients/{quote(client_id, safe='')}")


async def test_confidential_client_gets_a_generated_secret_once(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str, services: Services
) -> None:
    created = await put_client(http, operator, acme, "web", {"scope": "introspect"})
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    body = created.json()
    secret = body.pop("client_secret")
    assert len(secret) >= 32
    assert body == {
        "client_id": "web",
        "type": "confidential",
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "introspect",
        "enabled": True,
        "has_secret": True,
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
    }
    got = await http.get(client_url(acme, "web"), headers=operator)
    assert got.status_code == 200
    assert got.json() == body
    assert secret not in got.text
    stored = await services.store.get_client(acme, "web")
    tenant = await services.store.get_tenant(acme)
    assert stored is not None and tenant is not None
    assert stored.secret_hash == services.keys.secret_hash(acme, tenant.key_salt, secret)
    assert stored.secret_encrypted is None


async def test_given_secret_is_never_echoed(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    created = await put_client(
        http, operator, acme, "web", {"client_secret": "s3cret-value", "type": "confidential"}
    )
    assert created.status_code == 201
    assert "client_secret" not in created.json()
    assert "s3cret-value" not in created.text
    listed = await http.get(tenant_url(acme, "/clients"), headers=operator)
    assert "s3cret-value" not in listed.text


async def test_replace_without_secret_keeps_the_secret(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str, services: Services
) -> None:
    before = await services.store.get_client(acme, "app")
    replaced = await put_client(http, operator, acme, "app", {"scope": "revoke_any_token"})
    assert replaced.status_code == 200
    assert "client_secret" not in replaced.json()
    assert replaced.json()["scope"] == "revoke_any_token"
    after = await services.store.get_client(acme, "app")
    assert before is not None and after is not None
    assert after.secret_hash == before.secret_hash
    assert after.created_at == before.created_at
    rotated = await put_client(http, operator, acme, "app", {"client_secret": "new-secret"})
    assert rotated.status_code == 200
    latest = await services.store.get_client(acme, "app")
    assert latest is not None and latest.secret_hash != before.secret_hash


async def test_client_secret_jwt_keeps_a_sealed_copy_and_the_hash(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str, services: Services
) -> None:
    secret = "an-hmac-secret-of-enough-length-0123456789"
    body = {"token_endpoint_auth_method": "client_secret_jwt", "client_secret": secret}
    assert (await put_client(http, operator, acme, "jwt", body)).status_code == 201
    stored = await services.store.get_client(acme, "jwt")
    tenant = await services.store.get_tenant(acme)
    assert stored is not None and tenant is not None and stored.secret_encrypted is not None
    assert stored.secret_hash == services.keys.secret_hash(acme, tenant.key_salt, secret)
    opened = services.keys.open_secret(acme, tenant.key_salt, stored.secret_encrypted, "jwt")
    assert opened == secret
    assert secret.encode() not in stored.secret_encrypted


async def test_switch_to_client_secret_jwt_without_a_sealed_secret_generates_one(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    body = {"token_endpoint_auth_method": "client_secret_jwt"}
    switched = await put_client(http, operator, acme, "app", body)
    assert switched.status_code == 200
    assert switched.json()["client_secret"]
    again = await put_client(http, operator, acme, "app", body)
    assert "client_secret" not in again.json()


async def test_public_client(http: httpx.AsyncClient, operator: dict[str, str], acme: str) -> None:
    created = await put_client(http, operator, acme, "spa", {"type": "public"})
    assert created.status_code == 201
    body = created.json()
    assert body["token_endpoint_auth_method"] == "none"
    assert body["has_secret"] is False
    assert "client_secret" not in body
    inferred = await put_client(
        http, operator, acme, "spa2", {"token_endpoint_auth_method": "none"}
    )
    assert inferred.json()["type"] == "public"


async def test_private_key_jwt_client(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    body = {"token_endpoint_auth_method": "private_key_jwt", "jwks": JWKS}
    created = await put_client(http, operator, acme, "pk", body)
    assert created.status_code == 201
    assert created.json()["jwks"] == JWKS
    assert created.json()["has_secret"] is False
    by_uri = {"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://rp/jwks"}
    created = await put_client(http, operator, acme, "pk2", by_uri)
    assert created.json()["jwks_uri"] == "https://rp/jwks"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"colour": "blue"}, "colour"),
        ({"type": "secret"}, "type"),
        ({"token_endpoint_auth_method": "tls_client_auth"}, "token_endpoint_auth_method"),
        (
            {"type": "public", "token_endpoint_auth_method": "client_secret_basic"},
            "token_endpoint_auth_method",
        ),
        (
            {"type": "confidential", "token_endpoint_auth_method": "none"},
            "token_endpoint_auth_method",
        ),
        ({"type": "public", "client_secret": "x"}, "client_secret"),
        ({"client_secret": ""}, "client_secret"),
        ({"client_secret": 5}, "client_secret"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "jwks"),
        ({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"k": 1}}, "jwks"),
        (  # not a point on the curve
            {
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}]},
            },
            "jwks",
        ),
        (  # a symmetric key is no public key
            {
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"}]},
            },
            "jwks.keys[0]",
        ),
        (  # only encryption keys
            {
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [RP_KEY.jwk(use="enc")]},
            },
            "jwks",
        ),
        (
            {
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [RP_KEY.jwk(), PRIVATE_JWK]},
            },
            "jwks.keys[1]",
        ),
        ({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "ftp://x"}, "jwks_uri"),
        (
            {
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": JWKS,
                "jwks_uri": "https://x",
            },
            "jwks_uri",
        ),
        ({"jwks": JWKS}, "jwks"),
        ({"scope": ["a", "b"]}, "scope"),
        ({"scope": 'a "b"'}, "scope"),
        ({"enabled": "yes"}, "enabled"),
        ({"client_id": "other"}, "client_id"),
    ],
)
async def test_invalid_client_names_the_field(
    http: httpx.AsyncClient,
    operator: dict[str, str],
    acme: str,
    body: dict[str, object],
    field: str,
) -> None:
    response = await put_client(http, operator, acme, "bad", body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["field"] == field
    assert (await http.get(client_url(acme, "bad"), headers=operator)).status_code == 404


async def test_client_id_length(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    assert (await put_client(http, operator, acme, "c" * 255, {})).status_code == 201
    too_long = await put_client(http, operator, acme, "c" * 256, {})
    assert too_long.status_code == 400
    assert too_long.json()["field"] == "client_id"


@pytest.mark.parametrize("client_id", [RP, "a/b", "ünïcode client", "50%", "a%2Fb", "x?y#z"])
async def test_percent_encoded_client_ids(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str, client_id: str
) -> None:
    url = client_url(acme, client_id)
    created = await http.put(url, json={"client_id": client_id, "type": "public"}, headers=operator)
    assert created.status_code == 201, created.text
    assert created.json()["client_id"] == client_id
    got = await http.get(url, headers=operator)
    assert got.status_code == 200
    assert got.json()["client_id"] == client_id
    listed = await http.get(tenant_url(acme, "/clients"), headers=operator)
    assert client_id in [c["client_id"] for c in listed.json()["clients"]]
    assert (await http.delete(url, headers=operator)).status_code == 204
    assert (await http.get(url, headers=operator)).status_code == 404


async def test_https_client_id_of_a_private_key_jwt_client(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    """SPID and CIE relying parties are HTTPS URLs; percent-encoded in admin paths."""
    client_id = "https://rp.spid.example.it/"
    url = client_url(acme, client_id)
    body = {"token_endpoint_auth_method": "private_key_jwt", "jwks": JWKS}
    created = await http.put(url, json=body, headers=operator)
    assert created.status_code == 201, created.text
    got = await http.get(url, headers=operator)
    assert (got.json()["client_id"], got.json()["jwks"]) == (client_id, JWKS)
    assert (await http.delete(url, headers=operator)).status_code == 204
    assert (await http.get(url, headers=operator)).status_code == 404


async def test_unencoded_https_client_id_in_the_path(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    url = tenant_url(acme, "/clients/https://rp.example.it/app")
    created = await http.put(url, json={"type": "public"}, headers=operator)
    assert created.status_code == 201
    assert created.json()["client_id"] == "https://rp.example.it/app"
    encoded = client_url(acme, "https://rp.example.it/app")
    assert (await http.get(encoded, headers=operator)).status_code == 200


async def test_list_and_delete(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    await put_client(http, operator, acme, "b-client", {"type": "public", "enabled": False})
    listed = await http.get(tenant_url(acme, "/clients"), headers=operator)
    assert [(c["client_id"], c["enabled"]) for c in listed.json()["clients"]] == [
        ("app", True),
        ("b-client", False),
    ]
    assert all("client_secret" not in c for c in listed.json()["clients"])
    assert (await http.delete(client_url(acme, "b-client"), headers=operator)).status_code == 204
    again = await http.delete(client_url(acme, "b-client"), headers=operator)
    assert again.status_code == 404
    assert again.json()["error"] == "not_found"


async def test_clients_of_a_missing_tenant_are_404(
    http: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    assert (await put_client(http, operator, "ghost", "app", {})).status_code == 404
    assert (await http.get(tenant_url("ghost", "/clients"), headers=operator)).status_code == 404
    assert (await http.get(client_url("ghost", "app"), headers=operator)).status_code == 404


async def test_clients_are_per_tenant(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    await http.put(tenant_url("beta"), json={"issuer": "https://beta.example"}, headers=operator)
    assert (await http.get(client_url("beta", "app"), headers=operator)).status_code == 404
