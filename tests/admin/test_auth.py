"""Who may call what: the operator's key, tenant admin keys, no key."""

from __future__ import annotations

import httpx
import pytest

from tests.admin.conftest import (
    ACME_ISSUER,
    API,
    bearer,
    credential,
    put_tenant,
    tenant_key,
    tenant_url,
)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic b3A6b3A="}],
    ids=["none", "unknown", "basic"],
)
async def test_no_or_bad_key_is_401(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await http.get(f"{API}/tenants", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["error"] == "unauthorized"


async def test_operator_reaches_everything(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    assert (await http.get(f"{API}/tenants", headers=operator)).status_code == 200
    assert (await http.get(tenant_url(acme), headers=operator)).status_code == 200
    assert (await http.get(tenant_url(acme, "/admin-keys"), headers=operator)).status_code == 200


async def test_admin_key_is_shown_once_and_listed_by_id(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    created = await http.post(tenant_url(acme, "/admin-keys"), headers=operator)
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"key_id", "key"}
    listed = await http.get(tenant_url(acme, "/admin-keys"), headers=operator)
    assert listed.json()["admin_keys"] == [
        {"key_id": body["key_id"], "created_at": listed.json()["admin_keys"][0]["created_at"]}
    ]
    assert body["key"] not in listed.text


async def test_tenant_key_reaches_its_own_tenant(
    http: httpx.AsyncClient, acme: str, acme_key: dict[str, str]
) -> None:
    assert (await http.get(tenant_url(acme), headers=acme_key)).status_code == 200
    assert (await http.get(tenant_url(acme, "/clients"), headers=acme_key)).status_code == 200
    assert (await http.get(tenant_url(acme, "/clients/app"), headers=acme_key)).status_code == 200
    put = await http.put(tenant_url(acme, "/clients/other"), json={}, headers=acme_key)
    assert put.status_code == 201
    registered = await http.post(
        tenant_url(acme, "/credentials"), json=credential("t1"), headers=acme_key
    )
    assert registered.status_code == 200
    grant = {"client_id": "app", "sub": "alice"}
    assert (
        await http.put(tenant_url(acme, "/grants/g1"), json=grant, headers=acme_key)
    ).status_code == 201
    assert (
        await http.get(tenant_url(acme, "/subjects/alice/clients"), headers=acme_key)
    ).status_code == 200
    assert (
        await http.delete(tenant_url(acme, "/subjects/alice/clients/app"), headers=acme_key)
    ).status_code == 200
    assert (await http.get(tenant_url(acme, "/events"), headers=acme_key)).status_code == 200
    patched = await http.patch(
        tenant_url(acme), json={"revocation": {"cascade": "token"}}, headers=acme_key
    )
    assert patched.status_code == 200
    assert (
        await http.delete(tenant_url(acme, "/clients/other"), headers=acme_key)
    ).status_code == 204


async def test_tenant_key_is_403_elsewhere(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str, acme_key: dict[str, str]
) -> None:
    await put_tenant(http, operator, "beta", {"issuer": "https://beta.example"})
    forbidden = [
        await http.get(f"{API}/tenants", headers=acme_key),
        await http.put(tenant_url(acme), json={"issuer": ACME_ISSUER}, headers=acme_key),
        await http.put(tenant_url("new"), json={"issuer": "https://n.example"}, headers=acme_key),
        await http.delete(tenant_url(acme), headers=acme_key),
        await http.post(tenant_url(acme, "/admin-keys"), headers=acme_key),
        await http.get(tenant_url(acme, "/admin-keys"), headers=acme_key),
        await http.delete(tenant_url(acme, "/admin-keys/0123456789abcdef"), headers=acme_key),
        await http.get(tenant_url("beta"), headers=acme_key),
        await http.get(tenant_url("beta", "/clients"), headers=acme_key),
        await http.get(tenant_url("beta", "/events"), headers=acme_key),
        await http.post(tenant_url("beta", "/credentials"), json=[], headers=acme_key),
        await http.get(tenant_url("missing"), headers=acme_key),
    ]
    assert [r.status_code for r in forbidden] == [403] * len(forbidden)
    assert all(r.json()["error"] == "forbidden" for r in forbidden)


@pytest.mark.parametrize(
    "patch",
    [
        {"issuer": "https://other.example"},
        {"issuer_aliases": ["https://alias.example"]},
        {"enabled": False},
        {"enabled": None},
    ],
)
async def test_tenant_key_cannot_patch_issuer_aliases_or_enabled(
    http: httpx.AsyncClient, acme: str, acme_key: dict[str, str], patch: dict[str, object]
) -> None:
    response = await http.patch(tenant_url(acme), json=patch, headers=acme_key)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


async def test_revoked_key_is_401(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    created = (await http.post(tenant_url(acme, "/admin-keys"), headers=operator)).json()
    headers = bearer(created["key"])
    assert (await http.get(tenant_url(acme), headers=headers)).status_code == 200
    deleted = await http.delete(
        tenant_url(acme, f"/admin-keys/{created['key_id']}"), headers=operator
    )
    assert deleted.status_code == 204
    response = await http.get(tenant_url(acme), headers=headers)
    assert response.status_code == 401
    assert "Bearer" in response.headers["www-authenticate"]
    again = await http.delete(
        tenant_url(acme, f"/admin-keys/{created['key_id']}"), headers=operator
    )
    assert again.status_code == 404


async def test_key_with_a_wrong_secret_is_401(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    key = await tenant_key(http, operator, acme)
    response = await http.get(tenant_url(acme), headers=bearer(key[:-2] + "xx"))
    assert response.status_code == 401


async def test_key_of_a_deleted_tenant_stops_working(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    key = await tenant_key(http, operator, acme)
    assert (await http.delete(tenant_url(acme), headers=operator)).status_code == 204
    await put_tenant(http, operator, acme, {"issuer": ACME_ISSUER})
    assert (await http.get(tenant_url(acme), headers=bearer(key))).status_code == 401


async def test_admin_keys_of_a_missing_tenant_are_404(
    http: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    assert (
        await http.post(tenant_url("ghost", "/admin-keys"), headers=operator)
    ).status_code == 404
    assert (await http.get(tenant_url("ghost", "/admin-keys"), headers=operator)).status_code == 404
