"""Grant records, a subject's authorized clients, and withdrawing one of them."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from app.models import MarkKind
from app.services import Services
from tests.admin.conftest import credential, put_client, tenant_url

NOW = 1_800_000_000


@pytest.fixture(autouse=True)
def fixed_clock(services: Services) -> None:
    services.clock = lambda: NOW


async def test_put_and_get_grant(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    url = tenant_url(acme, "/grants/g-1")
    created = await http.put(
        url, json={"client_id": "app", "sub": "alice", "scope": "openid"}, headers=operator
    )
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    assert created.json() == {
        "grant_id": "g-1",
        "client_id": "app",
        "sub": "alice",
        "scope": "openid",
        "updated_at": NOW,
    }
    replaced = await http.put(
        url, json={"grant_id": "g-1", "client_id": "app", "sub": "alice"}, headers=operator
    )
    assert replaced.status_code == 200
    assert "scope" not in replaced.json()
    got = await http.get(url, headers=operator)
    assert got.json() == replaced.json()
    assert (await http.get(tenant_url(acme, "/grants/none"), headers=operator)).status_code == 404


async def test_grant_id_with_a_slash(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    url = tenant_url(acme, f"/grants/{quote('urn:g/1', safe='')}")
    created = await http.put(url, json={"client_id": "app", "sub": "alice"}, headers=operator)
    assert created.json()["grant_id"] == "urn:g/1"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sub": "alice"}, "client_id"),
        ({"client_id": "nobody", "sub": "alice"}, "client_id"),
        ({"client_id": "app"}, "sub"),
        ({"client_id": "app", "sub": "alice", "scope": 1}, "scope"),
        ({"client_id": "app", "sub": "alice", "extra": 1}, "extra"),
        ({"client_id": "app", "sub": "alice", "grant_id": "other"}, "grant_id"),
    ],
)
async def test_invalid_grant(
    http: httpx.AsyncClient,
    operator: dict[str, str],
    acme: str,
    body: dict[str, object],
    field: str,
) -> None:
    response = await http.put(tenant_url(acme, "/grants/g"), json=body, headers=operator)
    assert response.status_code == 400
    assert response.json()["field"] == field


async def setup_alice(http: httpx.AsyncClient, operator: dict[str, str], acme: str) -> None:
    await put_client(http, operator, acme, "spa", {"type": "public"})
    await put_client(http, operator, acme, "https://rp.example/app", {"type": "public"})
    batch = [
        credential("at-1", sub="alice", grant_id="g1"),
        credential("rt-1", type="refresh_token", sub="alice", grant_id="g1"),
        credential("ds-1", type="device_secret", sub="alice", device_session_id="s1"),
        credential("old", sub="alice", exp=NOW - 1),
        credential("bob-1", sub="bob"),
        credential("spa-1", "spa", sub="alice"),
        credential("rp-1", "https://rp.example/app", sub="alice"),
    ]
    assert (
        await http.post(tenant_url(acme, "/credentials"), json=batch, headers=operator)
    ).status_code == 200
    for grant_id, client_id in (("g1", "app"), ("g2", "app"), ("g3", "https://rp.example/app")):
        grant = {"client_id": client_id, "sub": "alice"}
        await http.put(tenant_url(acme, f"/grants/{grant_id}"), json=grant, headers=operator)


async def test_subject_clients(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    await setup_alice(http, operator, acme)
    response = await http.get(tenant_url(acme, "/subjects/alice/clients"), headers=operator)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "clients": [
            {"client_id": "app", "credentials": 3, "grants": 2},
            {"client_id": "https://rp.example/app", "credentials": 1, "grants": 1},
            {"client_id": "spa", "credentials": 1, "grants": 0},
        ]
    }
    nobody = await http.get(tenant_url(acme, "/subjects/carol/clients"), headers=operator)
    assert nobody.json() == {"clients": []}


async def test_withdraw_a_client(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str, services: Services
) -> None:
    await setup_alice(http, operator, acme)
    response = await http.delete(tenant_url(acme, "/subjects/alice/clients/app"), headers=operator)
    assert response.status_code == 200
    assert response.json() == {"revoked": 3}
    listed = await http.get(tenant_url(acme, "/subjects/alice/clients"), headers=operator)
    assert [c["client_id"] for c in listed.json()["clients"]] == ["https://rp.example/app", "spa"]
    tenant = await services.store.get_tenant(acme)
    assert tenant is not None
    for token, revoked in (
        ("at-1", True),
        ("rt-1", True),
        ("ds-1", True),
        ("bob-1", False),
        ("spa-1", False),
    ):
        found = await services.store.find_credential(
            acme, services.keys.token_hash(acme, tenant.key_salt, token)
        )
        assert found is not None
        assert (found.revoked_at is not None) is revoked, token
        if revoked:
            assert found.revoked_cause == "withdrawn"
    mark = await services.store.not_before(acme, [(MarkKind.CLIENT_SUBJECT, "app\x00alice")])
    assert mark == NOW
    assert await services.store.get_grant(acme, "g1") is None
    assert await services.store.get_grant(acme, "g3") is not None
    events = (await http.get(tenant_url(acme, "/events"), headers=operator)).json()["events"]
    assert events[-1] == {
        "id": events[-1]["id"],
        "time": NOW,
        "type": "revoked",
        "cause": "withdrawn",
        "count": 3,
        "client_id": "app",
        "sub": "alice",
    }
    again = await http.delete(tenant_url(acme, "/subjects/alice/clients/app"), headers=operator)
    assert again.json() == {"revoked": 0}


async def test_withdraw_a_percent_encoded_client(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    await setup_alice(http, operator, acme)
    client = quote("https://rp.example/app", safe="")
    response = await http.delete(
        tenant_url(acme, f"/subjects/alice/clients/{client}"), headers=operator
    )
    assert response.json() == {"revoked": 1}


async def test_subject_with_a_slash(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    sub = "tenant/alice"
    body = credential("t", sub=sub)
    await http.post(tenant_url(acme, "/credentials"), json=body, headers=operator)
    url = tenant_url(acme, f"/subjects/{quote(sub, safe='')}/clients")
    listed = await http.get(url, headers=operator)
    assert listed.json() == {"clients": [{"client_id": "app", "credentials": 1, "grants": 0}]}
    withdrawn = await http.delete(f"{url}/app", headers=operator)
    assert withdrawn.json() == {"revoked": 1}


async def test_missing_tenant_is_404(http: httpx.AsyncClient, operator: dict[str, str]) -> None:
    url = tenant_url("ghost", "/subjects/alice/clients")
    assert (await http.get(url, headers=operator)).status_code == 404
    assert (await http.delete(f"{url}/app", headers=operator)).status_code == 404
    grant = {"client_id": "app", "sub": "alice"}
    assert (
        await http.put(tenant_url("ghost", "/grants/g"), json=grant, headers=operator)
    ).status_code == 404
