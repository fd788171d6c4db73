"""Set up tenants, clients and credentials through the admin API, as an operator would."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

OPERATOR = {"Authorization": "Bearer test-operator-key-0123456789"}
HOUR = 3600


def basic(client_id: str, secret: str) -> dict[str, str]:
    """RFC 6749 section 2.3.1: form-urlencode both parts, then base64."""
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@dataclass
class Tenant:
    http: httpx.AsyncClient
    tenant_id: str
    issuer: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Tenant-ID": self.tenant_id}

    async def client(
        self,
        client_id: str,
        *,
        secret: str | None = "s3cret-" + "x" * 16,
        type: str = "confidential",
        method: str | None = None,
        scope: str = "",
        **fields: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"type": type, "scope": scope, **fields}
        if type == "public":
            body["token_endpoint_auth_method"] = "none"
        else:
            body["token_endpoint_auth_method"] = method or "client_secret_basic"
            if secret is not None:
                body["client_secret"] = secret
        r = await self.http.put(
            f"/admin/v1/tenants/{self.tenant_id}/clients/{quote(client_id, safe='')}",
            json=body,
            headers=OPERATOR,
        )
        assert r.status_code in (200, 201), r.text
        out: dict[str, Any] = r.json()
        return out

    async def register(self, *credentials: dict[str, Any]) -> dict[str, Any]:
        now = int(time.time())
        batch = [{"exp": now + HOUR, "iat": now, **c} for c in credentials]
        r = await self.http.post(
            f"/admin/v1/tenants/{self.tenant_id}/credentials", json=batch, headers=OPERATOR
        )
        assert r.status_code in (200, 201), r.text
        out: dict[str, Any] = r.json()
        return out

    async def patch(self, settings: dict[str, Any]) -> None:
        r = await self.http.patch(
            f"/admin/v1/tenants/{self.tenant_id}", json=settings, headers=OPERATOR
        )
        assert r.status_code == 200, r.text

    async def revoke(
        self, token: str | None, *, auth: dict[str, str] | None = None, **form: str
    ) -> httpx.Response:
        data = dict(form)
        if token is not None:
            data["token"] = token
        return await self.http.post(
            "/token/revoke", data=data, headers={**self.headers, **(auth or {})}
        )

    async def introspect(self, token: str, auth: dict[str, str]) -> dict[str, Any]:
        r = await self.http.post(
            "/token/introspect", data={"token": token}, headers={**self.headers, **auth}
        )
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    async def events(self) -> list[dict[str, Any]]:
        r = await self.http.get(f"/admin/v1/tenants/{self.tenant_id}/events", headers=OPERATOR)
        assert r.status_code == 200, r.text
        events: list[dict[str, Any]] = r.json()["events"]
        return events


async def make_tenant(
    http: httpx.AsyncClient, tenant_id: str, issuer: str | None = None, **settings: Any
) -> Tenant:
    issuer = issuer or f"https://auth.example.com/t/{tenant_id}"
    r = await http.put(
        f"/admin/v1/tenants/{tenant_id}", json={"issuer": issuer, **settings}, headers=OPERATOR
    )
    assert r.status_code in (200, 201), r.text
    return Tenant(http, tenant_id, issuer)


@dataclass
class World:
    """A tenant with an owner (confidential), another confidential client, a public client
    and a resource server allowed to introspect."""

    tenant: Tenant
    rs: dict[str, str]
    app: dict[str, str]
    other: dict[str, str]
    spa_id: str = "spa"

    async def active(self, token: str) -> bool:
        body = await self.tenant.introspect(token, self.rs)
        return bool(body["active"])


SECRET = "app-secret-0123456789abcdef"


async def make_world(http: httpx.AsyncClient, tenant_id: str = "acme", **settings: Any) -> World:
    tenant = await make_tenant(http, tenant_id, **settings)
    await tenant.client("app", secret=SECRET)
    await tenant.client("other", secret=SECRET)
    await tenant.client("spa", type="public")
    await tenant.client("rs", secret=SECRET, scope="introspect")
    return World(tenant, basic("rs", SECRET), basic("app", SECRET), basic("other", SECRET))
