"""Admin query parameters are given at most once: a repeated one is ``400`` naming it,
not silently its last value (found by the fuzzer, ``tests/fuzz``)."""

from __future__ import annotations

import httpx
import pytest

from tests.admin.conftest import tenant_url
from tests.admin.test_events import make_events


@pytest.mark.parametrize(
    ("query", "field"),
    [("after=1&after=", "after"), ("limit=1&limit=2", "limit"), ("after=&after=&limit=5", "after")],
)
async def test_a_repeated_parameter_is_refused(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str, query: str, field: str
) -> None:
    await make_events(http, operator, acme, 2)
    response = await http.get(tenant_url(acme, f"/events?{query}"), headers=operator)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert response.json()["error_description"] == "is repeated"


async def test_each_parameter_once_still_pages(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    await make_events(http, operator, acme, 2)
    response = await http.get(tenant_url(acme, "/events?after=1&limit=5"), headers=operator)
    assert response.status_code == 200, response.text
    assert [e["id"] for e in response.json()["events"]] == ["2"]
