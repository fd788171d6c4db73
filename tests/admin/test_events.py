"""The event feed: cursor paging and its parameters."""

from __future__ import annotations

import httpx
import pytest

from tests.admin.conftest import tenant_url


async def make_events(
    http: httpx.AsyncClient, headers: dict[str, str], tenant_id: str, n: int
) -> None:
    for i in range(n):
        url = tenant_url(tenant_id, f"/subjects/user-{i}/clients/app")
        assert (await http.delete(url, headers=headers)).status_code == 200


async def test_empty_feed(http: httpx.AsyncClient, operator: dict[str, str], acme: str) -> None:
    response = await http.get(tenant_url(acme, "/events"), headers=operator)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"events": [], "next": "0"}
    later = await http.get(tenant_url(acme, "/events?after=41"), headers=operator)
    assert later.json() == {"events": [], "next": "41"}


async def test_paging(http: httpx.AsyncClient, operator: dict[str, str], acme: str) -> None:
    await make_events(http, operator, acme, 5)
    seen: list[str] = []
    cursor = "0"
    pages = 0
    while True:
        page = (
            await http.get(tenant_url(acme, f"/events?after={cursor}&limit=2"), headers=operator)
        ).json()
        pages += 1
        if not page["events"]:
            assert page["next"] == cursor
            break
        assert len(page["events"]) <= 2
        assert page["next"] == page["events"][-1]["id"]
        seen += [e["sub"] for e in page["events"]]
        cursor = page["next"]
    assert seen == [f"user-{i}" for i in range(5)]
    assert pages == 4
    everything = (await http.get(tenant_url(acme, "/events"), headers=operator)).json()
    assert [e["sub"] for e in everything["events"]] == seen
    ids = [int(e["id"]) for e in everything["events"]]
    assert ids == sorted(ids)
    assert all(isinstance(e["id"], str) for e in everything["events"])


async def test_events_are_per_tenant(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    await http.put(tenant_url("beta"), json={"issuer": "https://beta.example"}, headers=operator)
    await make_events(http, operator, acme, 2)
    beta = await http.get(tenant_url("beta", "/events"), headers=operator)
    assert beta.json()["events"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("after=abc", "after"),
        ("after=-1", "after"),
        ("after=1.5", "after"),
        ("after=" + "9" * 30, "after"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("limit=" + "1" * 5000, "limit"),
    ],
)
async def test_bad_parameters(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str, query: str, field: str
) -> None:
    response = await http.get(tenant_url(acme, f"/events?{query}"), headers=operator)
    assert response.status_code == 400
    assert response.json()["field"] == field


async def test_limit_bounds(http: httpx.AsyncClient, operator: dict[str, str], acme: str) -> None:
    await make_events(http, operator, acme, 3)
    one = await http.get(tenant_url(acme, "/events?limit=1"), headers=operator)
    assert len(one.json()["events"]) == 1
    most = await http.get(tenant_url(acme, "/events?limit=1000"), headers=operator)
    assert len(most.json()["events"]) == 3


async def test_missing_tenant_is_404(http: httpx.AsyncClient, operator: dict[str, str]) -> None:
    assert (await http.get(tenant_url("ghost", "/events"), headers=operator)).status_code == 404
