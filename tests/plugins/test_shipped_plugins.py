"""The operator plugins shipped in ``plugins/``, through the HTTP interface.

Each plugin: what it does for the tenant that enables it, that its config is checked
when it is set (``400`` with ``field`` = ``plugins.enabled[0].config``), that another
tenant of the same service does not run it, and its audit events.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from app.config import ServiceConfig
from app.plugins.operator import MODULE_PREFIX
from app.services import Services
from tests.support.world import OPERATOR, Tenant, World, basic, make_world

PLUGINS_DIR = Path(__file__).resolve().parents[2] / "plugins"
WAIT_S = 10.0
"""The longest a test waits for something that should happen at once."""


@pytest.fixture
def config(tmp_path: Path) -> ServiceConfig:
    """The shipped plugins (the default ``./plugins``, made absolute)."""
    return ServiceConfig(data_dir=tmp_path / "data", tenants_dir=None, plugins_dir=PLUGINS_DIR)


def entry(name: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"plugins": {"enabled": [{"name": name, "config": config}]}}


async def refused(tenant: Tenant, name: str, config: Any) -> str:
    """Enabling ``name`` with ``config`` is refused; the description."""
    r = await tenant.http.patch(
        f"/admin/v1/tenants/{tenant.tenant_id}", json=entry(name, config), headers=OPERATOR
    )
    assert r.status_code == 400, (config, r.text)
    body = r.json()
    assert body["error"] == "invalid_request"
    assert body["field"] == "plugins.enabled[0].config", body
    description: str = body["error_description"]
    return description


async def stored_config(tenant: Tenant) -> dict[str, Any]:
    r = await tenant.http.get(f"/admin/v1/tenants/{tenant.tenant_id}", headers=OPERATOR)
    assert r.status_code == 200, r.text
    config: dict[str, Any] = r.json()["settings"]["plugins"]["enabled"][0]["config"]
    return config


async def two_worlds(http: httpx.AsyncClient) -> tuple[World, World]:
    """``acme`` and ``other-tenant``, the same clients in each, and in each tenant the
    tokens ``at-app`` (grant g1), ``rt-app`` (grant g2, scope offline_access),
    ``at-spa`` (public client ``spa``) and ``at-rs`` (the introspecting ``rs``)."""
    worlds = (
        await make_world(http, "acme"),
        await make_world(http, "other-tenant", issuer="https://auth.example.com/t/other"),
    )
    for world in worlds:
        await world.tenant.register(
            {
                "token": "at-app",
                "type": "access_token",
                "client_id": "app",
                "grant_id": "g1",
                "sub": "alice",
                "scope": "openid revoke",
            },
            {
                "token": "rt-app",
                "type": "refresh_token",
                "client_id": "app",
                "grant_id": "g2",
                "sub": "alice",
                "scope": "openid offline_access",
            },
            {"token": "at-spa", "type": "access_token", "client_id": "spa", "sub": "bob"},
            {"token": "at-rs", "type": "access_token", "client_id": "rs", "scope": "introspect"},
        )
    return worlds


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- confidential_only -----------------------------------------------------------------


async def test_confidential_only_rejects_public_clients(http: httpx.AsyncClient) -> None:
    acme, other = await two_worlds(http)
    await acme.tenant.patch(entry("confidential_only", {}))

    r = await acme.tenant.revoke("at-spa", client_id="spa")
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert await acme.active("at-spa")
    r = await acme.tenant.revoke("at-spa")  # no client credentials at all
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"

    # A confidential client goes on to the core's authentication as usual.
    assert (await acme.tenant.revoke("at-app", auth=acme.app)).status_code == 200
    assert not await acme.active("at-app")
    bad = basic("app", "wrong-secret-0123456789")
    assert (await acme.tenant.revoke("rt-app", auth=bad)).status_code == 401

    events = await acme.tenant.events()
    rejected = [e for e in events if e["type"] == "plugin_rejected"]
    assert len(rejected) == 2
    assert {e["cause"] for e in rejected} == {"confidential_only@1.0"}
    assert all(e["count"] == 0 for e in rejected)

    # The other tenant has not enabled it: its public client may revoke.
    assert (await other.tenant.revoke("at-spa", client_id="spa")).status_code == 200
    assert not await other.active("at-spa")
    assert "plugin_rejected" not in types(await other.tenant.events())


async def test_confidential_only_endpoints_and_config(http: httpx.AsyncClient) -> None:
    acme, _ = await two_worlds(http)
    await acme.tenant.patch(entry("confidential_only", {}))
    assert await stored_config(acme.tenant) == {"endpoints": ["revocation", "introspection"]}
    r = await http.post(
        "/token/introspect",
        data={"token": "at-app", "client_id": "spa"},
        headers=acme.tenant.headers,
    )
    assert r.status_code == 401

    await acme.tenant.patch(entry("confidential_only", {"endpoints": ["introspection"]}))
    assert (await acme.tenant.revoke("at-spa", client_id="spa")).status_code == 200
    assert not await acme.active("at-spa")

    for bad, key in [
        ({"endpoints": ["token"]}, "endpoints"),
        ({"endpoints": "revocation"}, "endpoints"),
        ({"endpoints": []}, "endpoints"),
        ({"bogus": True}, "bogus"),
    ]:
        assert key in await refused(acme.tenant, "confidential_only", bad)


# --- bearer_client_auth ------------------------------------------------------------------


async def test_bearer_client_auth_authenticates_with_a_live_access_token(
    http: httpx.AsyncClient,
) -> None:
    acme, other = await two_worlds(http)
    await acme.tenant.patch(entry("bearer_client_auth", {}))

    # app authenticates with its access token at-app and revokes its refresh token.
    r = await acme.tenant.revoke("rt-app", auth=bearer("at-app"))
    assert r.status_code == 200, r.text
    assert not await acme.active("rt-app")
    assert await acme.active("at-app")  # another grant
    events = await acme.tenant.events()
    assert types(events) == ["revoked"]
    assert events[0]["client_id"] == "app"
    # ... and at the introspection endpoint, rs with its own access token.
    r = await http.post(
        "/token/introspect",
        data={"token": "at-app"},
        headers={**acme.tenant.headers, **bearer("at-rs")},
    )
    assert r.status_code == 200, r.text
    assert r.json()["active"] is True
    # The scheme is case-insensitive; a client_id naming the same client is allowed.
    r = await acme.tenant.revoke(
        "unknown", auth={"Authorization": "bearer at-app"}, client_id="app"
    )
    assert r.status_code == 200
    # Without a Bearer header the core authenticates as usual.
    assert (await acme.tenant.revoke("nope", auth=acme.other)).status_code == 200

    # The other tenant has not enabled it: the core refuses a Bearer header.
    r = await other.tenant.revoke("rt-app", auth=bearer("at-app"))
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert await other.active("rt-app")


async def test_bearer_client_auth_rejects_what_is_not_a_live_access_token(
    http: httpx.AsyncClient,
) -> None:
    acme, _ = await two_worlds(http)
    await acme.tenant.register(
        {
            "token": "at-expired",
            "type": "access_token",
            "client_id": "app",
            "exp": int(time.time()) - 60,
            "iat": int(time.time()) - 3600,
        },
        {"token": "at-doomed", "type": "access_token", "client_id": "other", "grant_id": "g9"},
    )
    await acme.tenant.patch(entry("bearer_client_auth", {}))
    assert (await acme.tenant.revoke("at-doomed", auth=acme.other)).status_code == 200

    for token in ("unknown-token", "at-expired", "at-doomed", "rt-app", ""):
        r = await acme.tenant.revoke("at-app", auth=bearer(token))
        assert r.status_code == 401, token
        assert r.json()["error"] == "invalid_client"
        assert "at-app" not in r.text
    assert await acme.active("at-app")
    # A client_id naming another client than the token's is an error.
    r = await acme.tenant.revoke("at-app", auth=bearer("at-rs"), client_id="app")
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    assert await acme.active("at-app")

    events = await acme.tenant.events()
    rejected = [e for e in events if e["type"] == "plugin_rejected"]
    assert len(rejected) == 6
    assert {e["cause"] for e in rejected} == {"bearer_client_auth@1.0"}


async def test_bearer_client_auth_required_scope_and_config(http: httpx.AsyncClient) -> None:
    acme, _ = await two_worlds(http)
    await acme.tenant.patch(entry("bearer_client_auth", {"required_scope": "revoke"}))
    assert await stored_config(acme.tenant) == {"required_scope": "revoke"}
    # at-rs lacks the scope revoke; at-app has it.
    assert (await acme.tenant.revoke("at-spa", auth=bearer("at-rs"))).status_code == 401
    assert (await acme.tenant.revoke("rt-app", auth=bearer("at-app"))).status_code == 200
    assert not await acme.active("rt-app")

    for bad, key in [
        ({"required_scope": 5}, "required_scope"),
        ({"required_scope": ""}, "required_scope"),
        ({"required_scope": "a b"}, "required_scope"),
        ({"scope": "revoke"}, "scope"),
    ]:
        assert key in await refused(acme.tenant, "bearer_client_auth", bad)


# --- response_attributes -----------------------------------------------------------------


async def test_response_attributes_adds_attributes_and_headers(http: httpx.AsyncClient) -> None:
    acme, other = await two_worlds(http)
    await acme.tenant.patch(
        entry(
            "response_attributes",
            {
                "attributes": {"policy": "v2", "error": "never replaces", "nested": {"a": [1]}},
                "headers": {"X-Revocation-Policy": "v2"},
            },
        )
    )
    r = await acme.tenant.revoke("at-app", auth=acme.app)
    assert r.status_code == 200
    assert r.json() == {"policy": "v2", "error": "never replaces", "nested": {"a": [1]}}
    assert r.headers["x-revocation-policy"] == "v2"
    # Errors too ("on" is "always" by default), without replacing the error.
    r = await acme.tenant.revoke("at-app", auth=basic("app", "wrong-secret-0123456789"))
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert r.json()["policy"] == "v2"
    assert r.headers["x-revocation-policy"] == "v2"
    # The introspection endpoint too, keeping its own members.
    body = await acme.tenant.introspect("rt-app", acme.rs)
    assert body["active"] is True
    assert body["policy"] == "v2"

    # Not for the other tenant.
    r = await other.tenant.revoke("at-app", auth=other.app)
    assert r.status_code == 200
    assert r.content == b""
    assert "x-revocation-policy" not in r.headers


async def test_response_attributes_on_and_endpoints(http: httpx.AsyncClient) -> None:
    acme, _ = await two_worlds(http)
    wrong = basic("app", "wrong-secret-0123456789")
    config: dict[str, Any] = {"attributes": {"k": "v"}, "headers": {"X-K": "v"}}
    await acme.tenant.patch(entry("response_attributes", {**config, "on": "success"}))
    assert await stored_config(acme.tenant) == {
        **config,
        "on": "success",
        "endpoints": ["revocation", "introspection"],
    }
    assert (await acme.tenant.revoke("x", auth=acme.app)).json() == {"k": "v"}
    r = await acme.tenant.revoke("x", auth=wrong)
    assert "k" not in r.json()
    assert "x-k" not in r.headers

    await acme.tenant.patch(entry("response_attributes", {**config, "on": "error"}))
    r = await acme.tenant.revoke("x", auth=acme.app)
    assert r.content == b""
    assert "x-k" not in r.headers
    assert (await acme.tenant.revoke("x", auth=wrong)).json()["k"] == "v"

    await acme.tenant.patch(
        entry("response_attributes", {**config, "endpoints": ["introspection"]})
    )
    assert (await acme.tenant.revoke("x", auth=acme.app)).content == b""
    assert (await acme.tenant.introspect("x", acme.rs)) == {"active": False, "k": "v"}


async def test_response_attributes_config_is_checked(http: httpx.AsyncClient) -> None:
    acme, _ = await two_worlds(http)
    for bad, key in [
        ({"attributes": ["a"]}, "attributes"),
        ({"attributes": {"": 1}}, "attributes"),
        ({}, "attributes"),
        ({"headers": {"Content-Type": "text/plain"}}, "Content-Type"),
        ({"headers": {"Access-Control-Allow-Origin": "*"}}, "Access-Control-Allow-Origin"),
        ({"headers": {"X-Split": "a\r\nSet-Cookie: x=1"}}, "X-Split"),
        ({"headers": {"X-Number": 5}}, "X-Number"),
        ({"headers": {"Bad Name": "v"}}, "Bad Name"),
        ({"headers": {"X-A": "1", "x-a": "2"}}, "x-a"),
        ({"headers": {"X-A": "é"}}, "X-A"),
        ({"headers": {"X-A": "1"}, "on": "sometimes"}, "on"),
        ({"headers": {"X-A": "1"}, "endpoints": ["token"]}, "endpoints"),
        ({"headers": {"X-A": "1"}, "status": 200}, "status"),
    ]:
        assert key in await refused(acme.tenant, "response_attributes", bad)


# --- revoke_veto -------------------------------------------------------------------------


async def test_revoke_veto_by_client(http: httpx.AsyncClient) -> None:
    acme, other = await two_worlds(http)
    await acme.tenant.patch(entry("revoke_veto", {"clients": ["app"]}))
    assert await stored_config(acme.tenant) == {"clients": ["app"], "scopes": []}

    r = await acme.tenant.revoke("at-app", auth=acme.app)
    assert r.status_code == 200
    assert r.content == b""
    assert await acme.active("at-app")
    events = await acme.tenant.events()
    assert types(events) == ["plugin_veto"]
    assert events[0]["cause"] == "revoke_veto@1.0"
    assert events[0]["client_id"] == "app"
    assert events[0]["grant_id"] == "g1"
    assert events[0]["sub"] == "alice"
    assert events[0]["count"] == 0

    # Another client is not vetoed.
    assert (await acme.tenant.revoke("at-spa", client_id="spa")).status_code == 200
    assert not await acme.active("at-spa")
    # The resource owner's withdrawal through the admin API is never vetoed.
    r = await http.delete("/admin/v1/tenants/acme/subjects/alice/clients/app", headers=OPERATOR)
    assert r.status_code in (200, 204), r.text
    assert not await acme.active("at-app")

    # The other tenant has not enabled it.
    assert (await other.tenant.revoke("at-app", auth=other.app)).status_code == 200
    assert not await other.active("at-app")
    assert types(await other.tenant.events()) == ["revoked"]


async def test_revoke_veto_by_scope(http: httpx.AsyncClient) -> None:
    acme, _ = await two_worlds(http)
    await acme.tenant.patch(entry("revoke_veto", {"scopes": ["offline_access", "offline_access"]}))
    assert await stored_config(acme.tenant) == {"clients": [], "scopes": ["offline_access"]}

    assert (await acme.tenant.revoke("rt-app", auth=acme.app)).status_code == 200
    assert await acme.active("rt-app")
    assert (await acme.tenant.revoke("at-app", auth=acme.app)).status_code == 200
    assert not await acme.active("at-app")
    events = await acme.tenant.events()
    assert types(events) == ["plugin_veto", "revoked"]
    assert events[0]["cause"] == "revoke_veto@1.0"
    assert events[0]["token_type"] == "refresh_token"


async def test_revoke_veto_config_is_checked(http: httpx.AsyncClient) -> None:
    acme, _ = await two_worlds(http)
    for bad, key in [
        ({}, "clients"),
        ({"clients": [], "scopes": []}, "clients"),
        ({"clients": "app"}, "clients"),
        ({"clients": [""]}, "clients"),
        ({"clients": [7]}, "clients"),
        ({"scopes": ["a b"]}, "scopes"),
        ({"scopes": "offline_access"}, "scopes"),
        ({"clients": ["app"], "reason": "no"}, "reason"),
    ]:
        assert key in await refused(acme.tenant, "revoke_veto", bad)


# --- webhook_notifier --------------------------------------------------------------------

KEY_ENV = "REVOCATION_WEBHOOK_KEY_TEST"
KEY = "webhook-signing-key-0123456789abcdef"


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records each request and answers the scripted
    statuses (then 200); while ``hold`` is clear it keeps each request waiting."""

    statuses: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    hold: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            lines = head.split("\r\n")
            assert lines[0] == "POST /hook HTTP/1.1", lines[0]
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            async with self.changed:
                self.requests.append((headers, body))
                self.changed.notify_all()
            await self.hold.wait()
            status = self.statuses.pop(0) if self.statuses else 200
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()

    async def wait_for(self, n: int) -> None:
        async with asyncio.timeout(WAIT_S), self.changed:
            await self.changed.wait_for(lambda: len(self.requests) >= n)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    receiver.hold.set()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        receiver.hold.set()
        server.close()
        await server.wait_closed()


@pytest.fixture
def webhook_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv("REVOCATION_WEBHOOK_ALLOW_INSECURE", "1")
    yield


@pytest.fixture
async def notifier(services: Services, webhook_env: None) -> AsyncIterator[ModuleType]:
    """The webhook module this test's service loaded (each service loads its own)."""
    assert "webhook_notifier" in services.plugins.operator_plugins
    module = sys.modules[MODULE_PREFIX + "webhook_notifier"]
    try:
        yield module
    finally:
        await module.close()


def webhook(url: str, **config: Any) -> dict[str, Any]:
    return entry("webhook_notifier", {"url": url, "signing_key_env": KEY_ENV, **config})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_webhook_posts_a_signed_event(
    http: httpx.AsyncClient, notifier: ModuleType, receiver: Receiver
) -> None:
    acme, other = await two_worlds(http)
    await acme.tenant.patch(webhook(receiver.url))
    assert await stored_config(acme.tenant) == {
        "url": receiver.url,
        "signing_key_env": KEY_ENV,
        "timeout_s": 5.0,
        "max_attempts": 5,
        "queue_size": 1000,
        "backoff_s": 1.0,
    }

    assert (await acme.tenant.revoke("rt-app", auth=acme.app)).status_code == 200
    await notifier.drain(WAIT_S)
    assert len(receiver.requests) == 1
    headers, raw = receiver.requests[0]
    event = json.loads(raw)
    revoked = (await acme.tenant.events())[0]
    assert {k: v for k, v in event.items() if k != "id"} == {
        "tenant_id": "acme",
        "issuer": acme.tenant.issuer,
        "endpoint": "revocation",
        "time": revoked["time"],
        "client_id": "app",
        "cause": "grant",
        "count": 1,
        "applied": True,
        "event_ids": [revoked["id"]],
        "sub": "alice",
        "grant_id": "g2",
        "token_type": "refresh_token",
    }
    assert event["id"]
    assert b"rt-app" not in raw
    assert headers["content-type"] == "application/json"
    assert headers["x-revocation-timestamp"] == str(event["time"])
    expected = hmac.new(KEY.encode(), raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-revocation-signature"], f"sha256={expected}")

    # A withdrawal through the admin API is notified too.
    r = await http.delete("/admin/v1/tenants/acme/subjects/alice/clients/app", headers=OPERATOR)
    assert r.status_code in (200, 204), r.text
    await notifier.drain(WAIT_S)
    withdrawal = receiver.bodies()[1]
    assert withdrawal["endpoint"] == "admin.withdraw"
    assert (withdrawal["client_id"], withdrawal["sub"]) == ("app", "alice")
    assert withdrawal["count"] == 1

    # Nothing for the other tenant, which has not enabled it.
    assert (await other.tenant.revoke("rt-app", auth=other.app)).status_code == 200
    await notifier.drain(WAIT_S)
    assert len(receiver.requests) == 2


async def test_webhook_retries_until_delivered(
    http: httpx.AsyncClient, notifier: ModuleType, receiver: Receiver
) -> None:
    acme, _ = await two_worlds(http)
    await acme.tenant.patch(webhook(receiver.url, backoff_s=0.001))
    receiver.statuses = [503, 500]
    assert (await acme.tenant.revoke("at-app", auth=acme.app)).status_code == 200
    await notifier.drain(WAIT_S)
    assert len(receiver.requests) == 3
    assert len({raw for _, raw in receiver.requests}) == 1  # the same event each time
    headers, raw = receiver.requests[2]
    expected = hmac.new(KEY.encode(), raw, hashlib.sha256).hexdigest()
    assert headers["x-revocation-signature"] == f"sha256={expected}"
    assert receiver.statuses == []


async def test_webhook_gives_up_on_a_refusal_and_after_max_attempts(
    http: httpx.AsyncClient, notifier: ModuleType, receiver: Receiver
) -> None:
    acme, _ = await two_worlds(http)
    await acme.tenant.patch(webhook(receiver.url, backoff_s=0, max_attempts=2))
    receiver.statuses = [400, 503, 503, 201]
    assert (await acme.tenant.revoke("at-app", auth=acme.app)).status_code == 200
    assert (await acme.tenant.revoke("rt-app", auth=acme.app)).status_code == 200
    await notifier.drain(WAIT_S)
    # at-app: 400 is final; rt-app: 503 twice, then given up.
    assert [b["token_type"] for b in receiver.bodies()] == ["access_token"] + ["refresh_token"] * 2
    assert receiver.statuses == [201]


async def test_webhook_never_delays_the_response(
    http: httpx.AsyncClient, notifier: ModuleType, receiver: Receiver
) -> None:
    acme, _ = await two_worlds(http)
    await acme.tenant.patch(webhook(receiver.url))
    receiver.hold.clear()  # the receiver answers nothing until released
    async with asyncio.timeout(WAIT_S):
        r = await acme.tenant.revoke("at-app", auth=acme.app)
    assert r.status_code == 200
    await receiver.wait_for(1)
    receiver.hold.set()
    await notifier.drain(WAIT_S)
    assert receiver.bodies()[0]["grant_id"] == "g1"


async def test_webhook_receiver_down(http: httpx.AsyncClient, notifier: ModuleType) -> None:
    acme, _ = await two_worlds(http)
    url = f"http://127.0.0.1:{closed_port()}/hook"
    await acme.tenant.patch(webhook(url, backoff_s=0, max_attempts=3, timeout_s=2))
    r = await acme.tenant.revoke("at-app", auth=acme.app)
    assert r.status_code == 200
    assert not await acme.active("at-app")
    await notifier.drain(WAIT_S)
    assert types(await acme.tenant.events()) == ["revoked"]


async def test_webhook_full_queue_drops_the_oldest(
    http: httpx.AsyncClient, notifier: ModuleType, receiver: Receiver
) -> None:
    acme, _ = await two_worlds(http)
    await acme.tenant.register(
        {"token": "at-3", "type": "access_token", "client_id": "app", "grant_id": "g3"},
        {"token": "at-4", "type": "access_token", "client_id": "app", "grant_id": "g4"},
    )
    await acme.tenant.patch(webhook(receiver.url, queue_size=1))
    receiver.hold.clear()
    assert (await acme.tenant.revoke("at-app", auth=acme.app)).status_code == 200
    await receiver.wait_for(1)  # g1 is being delivered: the queue is empty again
    for token in ("rt-app", "at-3", "at-4"):  # g2 and g3 are dropped in turn
        assert (await acme.tenant.revoke(token, auth=acme.app)).status_code == 200
    receiver.hold.set()
    await notifier.drain(WAIT_S)
    assert [b["grant_id"] for b in receiver.bodies()] == ["g1", "g4"]


async def test_webhook_config_is_checked(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme, _ = await two_worlds(http)
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv("REVOCATION_WEBHOOK_KEY_SHORT", "short")
    monkeypatch.setenv("REVOCATION_ADMIN_KEY_COPY", KEY)
    monkeypatch.delenv("REVOCATION_WEBHOOK_ALLOW_INSECURE", raising=False)
    monkeypatch.delenv("REVOCATION_WEBHOOK_KEY_UNSET", raising=False)
    ok = {"url": "https://hooks.example.com/revocations", "signing_key_env": KEY_ENV}
    await acme.tenant.patch(entry("webhook_notifier", ok))
    for bad, key in [
        ({"signing_key_env": KEY_ENV}, "url"),
        ({**ok, "url": "http://hooks.example.com/"}, "https"),
        ({**ok, "url": "https://127.0.0.1/hook"}, "url"),
        ({**ok, "url": "https://127.1/hook"}, "url"),
        ({**ok, "url": "https://localhost:8443/hook"}, "url"),
        ({**ok, "url": "https://10.1.2.3/hook"}, "url"),
        ({**ok, "url": "https://169.254.169.254/latest"}, "url"),
        ({**ok, "url": "https://[::1]/hook"}, "url"),
        ({**ok, "url": "https://[::ffff:192.168.0.1]/hook"}, "url"),
        ({**ok, "url": "https://user:pw@hooks.example.com/"}, "url"),
        ({**ok, "url": "https://hooks.example.com:99999/"}, "url"),
        ({**ok, "url": "ftp://hooks.example.com/"}, "url"),
        ({**ok, "url": 5}, "url"),
        ({"url": ok["url"]}, "signing_key_env"),
        ({**ok, "signing_key_env": "REVOCATION_WEBHOOK_KEY_UNSET"}, "signing_key_env"),
        ({**ok, "signing_key_env": "REVOCATION_WEBHOOK_KEY_SHORT"}, "signing_key_env"),
        ({**ok, "signing_key_env": "REVOCATION_ADMIN_KEY_COPY"}, "signing_key_env"),
        ({**ok, "timeout_s": 0}, "timeout_s"),
        ({**ok, "timeout_s": "5"}, "timeout_s"),
        ({**ok, "max_attempts": 0}, "max_attempts"),
        ({**ok, "max_attempts": 2.5}, "max_attempts"),
        ({**ok, "max_attempts": True}, "max_attempts"),
        ({**ok, "queue_size": 10**9}, "queue_size"),
        ({**ok, "backoff_s": -1}, "backoff_s"),
        ({**ok, "secret": "x"}, "secret"),
    ]:
        assert key in await refused(acme.tenant, "webhook_notifier", bad)

    # With REVOCATION_WEBHOOK_ALLOW_INSECURE=1, http and loopback addresses are allowed.
    monkeypatch.setenv("REVOCATION_WEBHOOK_ALLOW_INSECURE", "1")
    await acme.tenant.patch(entry("webhook_notifier", {**ok, "url": "http://127.0.0.1:9/hook"}))
