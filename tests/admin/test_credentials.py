"""Credential registration: one or many, all or none, duplicates, clashes."""

from __future__ import annotations

import httpx
import pytest

from app.services import Services
from tests.admin.conftest import credential, put_client, tenant_url


async def register(
    http: httpx.AsyncClient, headers: dict[str, str], tenant_id: str, body: object
) -> httpx.Response:
    return await http.post(tenant_url(tenant_id, "/credentials"), json=body, headers=headers)


async def test_single_object(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str, services: Services
) -> None:
    body = credential(
        "rt-secret-value",
        type="refresh_token",
        sub="alice",
        grant_id="g1",
        device_session_id="ds1",
        scope="openid",
        iat=1_700_000_000,
    )
    response = await register(http, operator, acme, body)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"registered": 1, "duplicates": 0}
    assert "rt-secret-value" not in response.text
    tenant = await services.store.get_tenant(acme)
    assert tenant is not None
    token_hash = services.keys.token_hash(acme, tenant.key_salt, "rt-secret-value")
    found = await services.store.find_credential(acme, token_hash)
    assert found is not None
    assert (found.type, found.client_id, found.sub, found.grant_id) == (
        "refresh_token",
        "app",
        "alice",
        "g1",
    )
    assert (found.device_session_id, found.scope, found.iat, found.exp) == (
        "ds1",
        "openid",
        1_700_000_000,
        4_000_000_000,
    )


async def test_duplicates_are_counted(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    first = await register(http, operator, acme, [credential("a"), credential("b")])
    assert first.json() == {"registered": 2, "duplicates": 0}
    again = await register(
        http, operator, acme, [credential("a"), credential("c"), credential("c")]
    )
    assert again.status_code == 200
    assert again.json() == {"registered": 1, "duplicates": 2}


async def test_same_token_with_other_fields_is_409(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    await register(http, operator, acme, credential("a", sub="alice"))
    clash = await register(http, operator, acme, [credential("new"), credential("a", sub="bob")])
    assert clash.status_code == 409
    assert clash.json()["error"] == "conflict"
    assert '"a"' not in clash.text
    # all or none: "new" was not registered
    retry = await register(http, operator, acme, credential("new"))
    assert retry.json() == {"registered": 1, "duplicates": 0}


async def test_ten_thousand_in_one_request(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    await put_client(http, operator, acme, "spa", {"type": "public"})
    batch = [
        credential(f"token-{i}", "app" if i % 2 else "spa", sub=f"user-{i % 7}")
        for i in range(10_000)
    ]
    response = await register(http, operator, acme, batch)
    assert response.status_code == 200, response.text
    assert response.json() == {"registered": 10_000, "duplicates": 0}
    again = await register(http, operator, acme, batch[:10])
    assert again.json() == {"registered": 0, "duplicates": 10}


async def test_more_than_ten_thousand_is_400(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    response = await register(http, operator, acme, [credential(f"t{i}") for i in range(10_001)])
    assert response.status_code == 400
    assert response.json()["field"] == ""


async def test_one_unknown_client_registers_nothing(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    batch = [credential(f"t{i}") for i in range(50)]
    batch[37]["client_id"] = "nobody"
    response = await register(http, operator, acme, batch)
    assert response.status_code == 400
    assert response.json()["field"] == "[37].client_id"
    retry = await register(http, operator, acme, batch[:37])
    assert retry.json() == {"registered": 37, "duplicates": 0}


async def test_many_clients_in_one_batch(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    for i in range(25):
        await put_client(http, operator, acme, f"c{i}", {"type": "public"})
    batch = [credential(f"t{i}", f"c{i % 25}") for i in range(100)]
    batch.append(credential("orphan", "c99"))
    response = await register(http, operator, acme, batch)
    assert response.json()["field"] == "[100].client_id"
    response = await register(http, operator, acme, batch[:100])
    assert response.json() == {"registered": 100, "duplicates": 0}


async def test_unknown_client_in_a_single_object(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    response = await register(http, operator, acme, credential("t", "nobody"))
    assert response.status_code == 400
    assert response.json()["field"] == "client_id"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"token": None}, "token"),
        ({"token": ""}, "token"),
        ({"token": 12}, "token"),
        ({"token": "x" * 4097}, "token"),
        ({"type": None}, "type"),
        ({"type": "id_token"}, "type"),
        ({"client_id": None}, "client_id"),
        ({"exp": None}, "exp"),
        ({"exp": "soon"}, "exp"),
        ({"exp": True}, "exp"),
        ({"exp": 1.5}, "exp"),
        ({"iat": -1}, "iat"),
        ({"sub": 7}, "sub"),
        ({"grant_id": ""}, "grant_id"),
        ({"scope": ["a"]}, "scope"),
        ({"jti": "x"}, "jti"),
    ],
)
async def test_invalid_fields(
    http: httpx.AsyncClient,
    operator: dict[str, str],
    acme: str,
    change: dict[str, object],
    field: str,
) -> None:
    bad = credential("secret-token-value") | change
    single = await register(http, operator, acme, bad)
    assert single.status_code == 400
    assert single.json()["field"] == field
    assert "secret-token-value" not in single.text
    listed = await register(http, operator, acme, [credential("ok"), bad])
    assert listed.status_code == 400
    assert listed.json()["field"] == f"[1].{field}"


@pytest.mark.parametrize(("body", "field"), [("token", ""), (["token"], "[0]"), (42, "")])
async def test_body_must_be_objects(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str, body: object, field: str
) -> None:
    response = await register(http, operator, acme, body)
    assert response.status_code == 400
    assert response.json()["field"] == field


async def test_empty_list(http: httpx.AsyncClient, operator: dict[str, str], acme: str) -> None:
    response = await register(http, operator, acme, [])
    assert response.json() == {"registered": 0, "duplicates": 0}


async def test_same_token_in_two_tenants_gives_unrelated_records(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str, services: Services
) -> None:
    await http.put(tenant_url("beta"), json={"issuer": "https://beta.example"}, headers=operator)
    await put_client(http, operator, "beta", "app", {"type": "public"})
    assert (await register(http, operator, acme, credential("shared"))).status_code == 200
    other = await register(http, operator, "beta", credential("shared", sub="bob"))
    assert other.json() == {"registered": 1, "duplicates": 0}


async def test_missing_tenant_is_404(http: httpx.AsyncClient, operator: dict[str, str]) -> None:
    assert (await register(http, operator, "ghost", credential("t"))).status_code == 404
