"""Tenant isolation promises, each with its own test."""

from __future__ import annotations

import httpx

from tests.support.world import OPERATOR, SECRET, basic, make_world


async def test_same_token_string_in_two_tenants_is_two_records(http: httpx.AsyncClient) -> None:
    a = await make_world(http, "alpha")
    b = await make_world(http, "beta")
    for world in (a, b):
        await world.tenant.register(
            {"token": "shared-token", "type": "access_token", "client_id": "app"}
        )
    assert (await a.tenant.revoke("shared-token", auth=a.app)).status_code == 200
    assert not await a.active("shared-token")
    assert await b.active("shared-token")
    assert await b.tenant.events() == []


async def test_client_of_one_tenant_cannot_use_another_issuer(http: httpx.AsyncClient) -> None:
    a = await make_world(http, "alpha")
    b = await make_world(http, "beta")
    await a.tenant.client("only-in-alpha", secret=SECRET)
    await b.tenant.register({"token": "bt", "type": "access_token", "client_id": "app"})
    r = await http.post(
        "https://auth.example.com/t/beta/token/revoke",
        data={"token": "bt"},
        headers=basic("only-in-alpha", SECRET),
    )
    assert r.status_code == 401
    assert await b.active("bt")


async def test_same_client_id_in_two_tenants_has_two_secrets(http: httpx.AsyncClient) -> None:
    a = await make_world(http, "alpha")
    b = await make_world(http, "beta")
    await b.tenant.client("app", secret="beta-secret-0123456789")
    await b.tenant.register({"token": "bt", "type": "access_token", "client_id": "app"})
    # alpha's app secret does not authenticate beta's app.
    assert (await b.tenant.revoke("bt", auth=a.app)).status_code == 401
    assert (
        await b.tenant.revoke("bt", auth=basic("app", "beta-secret-0123456789"))
    ).status_code == 200


async def test_tenant_admin_key_reaches_only_its_tenant(http: httpx.AsyncClient) -> None:
    await make_world(http, "alpha")
    await make_world(http, "beta")
    r = await http.post("/admin/v1/tenants/alpha/admin-keys", headers=OPERATOR)
    assert r.status_code == 201
    alpha_key = {"Authorization": f"Bearer {r.json()['key']}"}
    assert (await http.get("/admin/v1/tenants/alpha/events", headers=alpha_key)).status_code == 200
    assert (await http.get("/admin/v1/tenants/beta/events", headers=alpha_key)).status_code == 403
    assert (
        await http.get("/admin/v1/tenants/beta/clients/app", headers=alpha_key)
    ).status_code == 403
    r = await http.post(
        "/admin/v1/tenants/beta/credentials",
        headers=alpha_key,
        json={"token": "x", "type": "access_token", "client_id": "app", "exp": 2**31},
    )
    assert r.status_code == 403


async def test_events_of_one_tenant_never_show_in_another(http: httpx.AsyncClient) -> None:
    a = await make_world(http, "alpha")
    b = await make_world(http, "beta")
    await a.tenant.register(
        {"token": "t", "type": "access_token", "client_id": "app", "sub": "alice"}
    )
    await a.tenant.revoke("t", auth=a.app)
    assert len(await a.tenant.events()) == 1
    assert await b.tenant.events() == []
