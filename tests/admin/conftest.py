"""Admin API fixtures: a tenant, its admin key, helpers to register clients."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from app.types import JSON

API = "/admin/v1"
ACME_ISSUER = "https://acme.example"


def tenant_url(tenant_id: str, rest: str = "") -> str:
    return f"{API}/tenants/{tenant_id}{rest}"


async def put_tenant(
    http: httpx.AsyncClient, headers: dict[str, str], tenant_id: str, settings: JSON
) -> httpx.Response:
    return await http.put(tenant_url(tenant_id), json=settings, headers=headers)


async def put_client(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    tenant_id: str,
    client_id: str,
    body: JSON | None = None,
) -> httpx.Response:
    url = tenant_url(tenant_id, f"/clients/{quote(client_id, safe='')}")
    return await http.put(url, json=body if body is not None else {}, headers=headers)


def credential(token: str, client_id: str = "app", **fields: Any) -> JSON:
    body: JSON = {"token": token, "type": "access_token", "client_id": client_id}
    return body | {"exp": 4_000_000_000} | fields


async def tenant_key(http: httpx.AsyncClient, operator: dict[str, str], tenant_id: str) -> str:
    response = await http.post(tenant_url(tenant_id, "/admin-keys"), headers=operator)
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def acme(http: httpx.AsyncClient, operator: dict[str, str]) -> str:
    """Tenant ``acme`` with a confidential client ``app`` (secret ``app-secret``)."""
    response = await put_tenant(http, operator, "acme", {"issuer": ACME_ISSUER})
    assert response.status_code == 201, response.text
    response = await put_client(http, operator, "acme", "app", {"client_secret": "app-secret"})
    assert response.status_code == 201, response.text
    return "acme"


@pytest.fixture
async def acme_key(http: httpx.AsyncClient, operator: dict[str, str], acme: str) -> dict[str, str]:
    """Headers with an admin key of tenant ``acme``."""
    return bearer(await tenant_key(http, operator, acme))
